//! How a simulated container behaves once it runs: keep running, or exit with a code after a
//! while.
//!
//! Pure functions. The mock runs no real process, so it reads the behaviour off the pod:
//!
//! 1. The annotation [`ANNOTATION_BEHAVIOUR`] on the pod sets every app container's behaviour;
//!    `mock.cci.io/behaviour.{container}` sets one container's (and wins). Values:
//!    `run` (keep running), `succeed-after=DURATION` (exit 0), `fail-after=DURATION` (exit 1),
//!    optionally followed by `,exit-code=N` (e.g. `fail-after=2s,exit-code=3`). A duration is a
//!    number with `ms`, `s`, `m` or `h` (`s` when omitted). A malformed value refuses the pod.
//! 2. Otherwise the container's `command` and `args`, joined, are read as a tiny shell script:
//!    `sleep N` waits N seconds (`s`/`m`/`h` suffixes allowed), `exit N` exits with N,
//!    `true`/`:`/`echo …` do nothing, `false` exits 1, and steps may be joined with `;`, `&&`
//!    or new lines, directly or through `sh -c` / `bash -c`. A script that runs off its end exits
//!    0. One understood program stands for the seed's Job:
//!    `perl -Mbignum=bpi -wle 'print bpi(2000)'` exits 0 after
//!    [`compute_time`](crate::MockConfig::compute_time).
//! 3. Anything else (no command, i.e. the image's entrypoint, or a program the mock does not
//!    know) keeps running, like a server.
//!
//! What happens after an exit depends on the pod's `restartPolicy` (see
//! [`crate::state`]): `Never` leaves the container terminated, `OnFailure` restarts it after a
//! non-zero code, `Always` restarts it in every case, with the kubelet's back-off.
//!
//! A graceful delete sends every running container SIGTERM; [`OnSigterm`] says what the
//! container does with it. The annotation [`ANNOTATION_ON_SIGTERM`] (`exit` or `ignore`) sets it
//! for every app container; otherwise [`on_sigterm_from_command`] reads it off the container as
//! a kubelet would see it happen: a container without a `command` runs its image's entrypoint,
//! a server that handles SIGTERM and stops (nginx, the seed's workloads); a container with a
//! `command` runs that program as PID 1, and PID 1 without a handler never sees SIGTERM (the
//! kernel drops it), so it runs until the grace period ends and it is killed, unless its script
//! sets a `trap` for `TERM`.

use std::time::Duration;

/// The pod annotation that sets every app container's behaviour.
pub const ANNOTATION_BEHAVIOUR: &str = "mock.cci.io/behaviour";

/// Longest simulated duration accepted (a year); longer is refused rather than overflowing.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a container does once it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs until the pod is deleted.
    Run,
    /// Exits with `code` `after` it started.
    Exit {
        /// How long it runs.
        after: Duration,
        /// Its exit code (0 is success).
        code: i32,
    },
}

/// The pod annotation that says how every app container answers SIGTERM: `exit` or `ignore`.
pub const ANNOTATION_ON_SIGTERM: &str = "mock.cci.io/on-sigterm";

/// What a running container does with the SIGTERM of a graceful delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSigterm {
    /// It stops at once: the pod goes after the mock's
    /// [`stop_time`](crate::MockConfig::stop_time), well within the grace period.
    Exit,
    /// It keeps running until the grace period ends and it is killed.
    Ignore,
}

/// Parses the [`ANNOTATION_ON_SIGTERM`] value; the error is a phrase naming what is wrong.
pub fn parse_on_sigterm(value: &str) -> Result<OnSigterm, String> {
    match value.trim() {
        "exit" => Ok(OnSigterm::Exit),
        "ignore" => Ok(OnSigterm::Ignore),
        _ => Err(format!(
            "{value:?} is not understood here: use \"exit\" or \"ignore\""
        )),
    }
}

/// How a container running `command` with `args` answers SIGTERM (see the module docs).
pub fn on_sigterm_from_command(command: &[String], args: &[String]) -> OnSigterm {
    if command.is_empty() {
        return OnSigterm::Exit;
    }
    let script = command
        .iter()
        .chain(args)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let traps_term = script.split_whitespace().any(|w| w == "trap") && script.contains("TERM");
    if traps_term {
        OnSigterm::Exit
    } else {
        OnSigterm::Ignore
    }
}

/// The annotation that sets one container's behaviour.
pub fn container_annotation(container: &str) -> String {
    format!("{ANNOTATION_BEHAVIOUR}.{container}")
}

/// Parses a behaviour annotation value; the error is a phrase naming what is wrong.
pub fn parse_annotation(value: &str) -> Result<Behaviour, String> {
    let usage = "use \"run\", \"succeed-after=5s\" or \"fail-after=5s[,exit-code=N]\"";
    let mut parts = value.split(',').map(str::trim);
    let first = parts.next().unwrap_or_default();
    let mut behaviour = match first.split_once('=') {
        None if first == "run" => Behaviour::Run,
        Some(("succeed-after", duration)) => Behaviour::Exit {
            after: parse_duration(duration)?,
            code: 0,
        },
        Some(("fail-after", duration)) => Behaviour::Exit {
            after: parse_duration(duration)?,
            code: 1,
        },
        _ => return Err(format!("{value:?} is not a behaviour: {usage}")),
    };
    for part in parts {
        match (part.split_once('='), &mut behaviour) {
            (Some(("exit-code", code)), Behaviour::Exit { code: slot, .. }) if *slot != 0 => {
                *slot = code
                    .parse()
                    .ok()
                    .filter(|c: &i32| (1..=255).contains(c))
                    .ok_or_else(|| {
                        format!("{value:?}: exit-code must be a number from 1 to 255")
                    })?;
            }
            _ => {
                return Err(format!(
                    "{value:?}: {part:?} is not understood here: {usage}"
                ));
            }
        }
    }
    Ok(behaviour)
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1.5` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let refuse =
        || format!("{text:?} is not a duration: write a number with ms, s, m or h, e.g. \"5s\"");
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(refuse()),
    };
    if number.is_empty() || number.len() > 20 {
        return Err(refuse());
    }
    let value: f64 = number.parse().map_err(|_| refuse())?;
    let seconds = value * factor;
    if !seconds.is_finite() || seconds < 0.0 || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("{text:?} is out of range (at most a year)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The behaviour of a container running `command` with `args` (see the module docs);
/// `compute_time` is how long the seed's `perl … bpi(2000)` runs.
pub fn from_command(command: &[String], args: &[String], compute_time: Duration) -> Behaviour {
    let argv: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
    let Some((program, rest)) = argv.split_first() else {
        return Behaviour::Run;
    };
    let name = program.rsplit('/').next().unwrap_or(program);
    match name {
        "sh" | "bash" | "ash" | "dash" => match rest {
            [flag, script, ..] if *flag == "-c" => run_script(script),
            _ => Behaviour::Run,
        },
        "perl" if rest.iter().any(|a| a.contains("bpi(")) => Behaviour::Exit {
            after: compute_time,
            code: 0,
        },
        _ => run_script(&argv.join(" ")),
    }
}

/// Runs a tiny shell script (see the module docs); unknown steps mean "keeps running".
fn run_script(script: &str) -> Behaviour {
    let mut elapsed = Duration::ZERO;
    let steps = script
        .split(['\n', ';'])
        .flat_map(|line| line.split("&&"))
        .map(str::trim)
        .filter(|step| !step.is_empty());
    for step in steps {
        let mut words: Vec<&str> = step.split_whitespace().collect();
        if let Some(program) = words.first_mut() {
            *program = program.rsplit('/').next().unwrap_or(program);
        }
        match words.as_slice() {
            ["sleep", duration] => match parse_duration(duration) {
                Ok(d) => elapsed = elapsed.saturating_add(d).min(MAX_DURATION),
                Err(_) => return Behaviour::Run,
            },
            ["exit"] => {
                return Behaviour::Exit {
                    after: elapsed,
                    code: 0,
                };
            }
            ["exit", code] => {
                return match code.parse::<i32>() {
                    Ok(code) => Behaviour::Exit {
                        after: elapsed,
                        code: code.rem_euclid(256),
                    },
                    Err(_) => Behaviour::Run,
                };
            }
            ["true"] | [":"] => {}
            ["echo", ..] => {}
            ["false"] => {
                return Behaviour::Exit {
                    after: elapsed,
                    code: 1,
                };
            }
            _ => return Behaviour::Run,
        }
    }
    Behaviour::Exit {
        after: elapsed,
        code: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const COMPUTE: Duration = Duration::from_secs(3);

    fn exit(secs: f64, code: i32) -> Behaviour {
        Behaviour::Exit {
            after: Duration::from_secs_f64(secs),
            code,
        }
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[rstest]
    #[case::no_command(&[], &[], Behaviour::Run)]
    #[case::sleep(&["sleep", "5"], &[], exit(5.0, 0))]
    #[case::sleep_in_args(&["sleep"], &["30"], exit(30.0, 0))]
    #[case::sleep_with_unit(&["/bin/sleep", "2m"], &[], exit(120.0, 0))]
    #[case::exit_code(&["sh", "-c", "exit 3"], &[], exit(0.0, 3))]
    #[case::sleep_then_fail(&["/bin/sh", "-c", "sleep 2; exit 1"], &[], exit(2.0, 1))]
    #[case::and_chain(&["bash"], &["-c", "echo hi && sleep 1 && false"], exit(1.0, 1))]
    #[case::true_command(&["true"], &[], exit(0.0, 0))]
    #[case::seed_perl(&["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"], &[], exit(3.0, 0))]
    #[case::server(&["nginx", "-g", "daemon off;"], &[], Behaviour::Run)]
    #[case::unknown_in_script(&["sh", "-c", "sleep 1; ./serve"], &[], Behaviour::Run)]
    #[case::bad_sleep(&["sleep", "forever"], &[], Behaviour::Run)]
    #[case::infinite_sleep(&["sleep", "infinity"], &[], Behaviour::Run)]
    fn commands_map_to_behaviours(
        #[case] command: &[&str],
        #[case] args: &[&str],
        #[case] expected: Behaviour,
    ) {
        assert_eq!(
            from_command(&strings(command), &strings(args), COMPUTE),
            expected
        );
    }

    #[rstest]
    #[case::run("run", Behaviour::Run)]
    #[case::succeed("succeed-after=5s", exit(5.0, 0))]
    #[case::fail("fail-after=500ms", exit(0.5, 1))]
    #[case::fail_with_code("fail-after=1m, exit-code=42", exit(60.0, 42))]
    #[case::plain_seconds("succeed-after=2", exit(2.0, 0))]
    fn annotations_parse(#[case] value: &str, #[case] expected: Behaviour) {
        assert_eq!(parse_annotation(value), Ok(expected));
    }

    #[rstest]
    #[case::empty("")]
    #[case::unknown("explode")]
    #[case::bad_duration("succeed-after=soon")]
    #[case::negative("succeed-after=-1s")]
    #[case::huge("succeed-after=99999999999h")]
    #[case::code_on_success("succeed-after=1s,exit-code=2")]
    #[case::code_zero("fail-after=1s,exit-code=0")]
    #[case::unicode("succeed-after=５s")]
    fn bad_annotations_are_refused(#[case] value: &str) {
        assert!(parse_annotation(value).is_err(), "{value}");
    }

    #[rstest]
    #[case::the_image_entrypoint(&[], &[], OnSigterm::Exit)]
    #[case::entrypoint_with_args(&[], &["-g", "daemon off;"], OnSigterm::Exit)]
    #[case::sleep_as_pid_1(&["sleep", "3600"], &[], OnSigterm::Ignore)]
    #[case::a_shell_script(&["sh", "-c"], &["echo hi; sleep 60"], OnSigterm::Ignore)]
    #[case::a_script_that_traps_term(&["sh", "-c"], &["trap 'exit 0' TERM; sleep 60 & wait"], OnSigterm::Exit)]
    #[case::a_trap_for_another_signal(&["sh", "-c", "trap 'exit 0' HUP; sleep 60"], &[], OnSigterm::Ignore)]
    fn sigterm_is_read_off_the_command(
        #[case] command: &[&str],
        #[case] args: &[&str],
        #[case] expected: OnSigterm,
    ) {
        assert_eq!(
            on_sigterm_from_command(&strings(command), &strings(args)),
            expected
        );
    }

    #[rstest]
    #[case("exit", Ok(OnSigterm::Exit))]
    #[case(" ignore ", Ok(OnSigterm::Ignore))]
    #[case("term", Err(()))]
    #[case("", Err(()))]
    fn the_sigterm_annotation_parses(#[case] value: &str, #[case] expected: Result<OnSigterm, ()>) {
        assert_eq!(parse_on_sigterm(value).map_err(|_| ()), expected);
    }
}
