//! Progress display for long steps: spinners on a terminal, plain timestamped lines otherwise
//! (CI logs, `cargo test` output).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Clone, Debug)]
pub struct Progress {
    fancy: bool,
    quiet: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::stderr()
    }
}

impl Progress {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    pub fn stderr() -> Self {
        Self {
            fancy: std::io::stderr().is_terminal(),
            quiet: false,
        }
    }

    /// Prints nothing.
    pub fn quiet() -> Self {
        Self {
            fancy: false,
            quiet: true,
        }
    }

    /// Starts a named step.
    pub fn spinner(&self, step: &str) -> Step {
        let bar = if self.fancy {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message(step.to_owned());
            Some(bar)
        } else {
            if !self.quiet {
                eprintln!("burstcert: {step} ...");
            }
            None
        };
        Step {
            bar,
            quiet: self.quiet,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }
}

/// One step in progress.
#[derive(Debug)]
pub struct Step {
    bar: Option<ProgressBar>,
    quiet: bool,
    started: Instant,
    last_line: Instant,
}

impl Step {
    /// Updates the step's message (throttled to one line every 20 s without a terminal).
    pub fn set_message(&mut self, msg: String) {
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None if !self.quiet && self.last_line.elapsed() > Duration::from_secs(20) => {
                self.last_line = Instant::now();
                eprintln!("burstcert:   {msg} ({}s)", self.started.elapsed().as_secs());
            }
            None => {}
        }
    }

    /// Ends the step successfully.
    pub fn finish(self, msg: &str) {
        self.end(msg);
    }

    /// Ends the step as failed.
    pub fn fail(self, msg: &str) {
        self.end(msg);
    }

    fn end(self, msg: &str) {
        let secs = self.started.elapsed().as_secs_f32();
        match &self.bar {
            Some(bar) => bar.finish_with_message(format!("{msg} ({secs:.1}s)")),
            None if !self.quiet => eprintln!("burstcert: {msg} ({secs:.1}s)"),
            None => {}
        }
    }
}
