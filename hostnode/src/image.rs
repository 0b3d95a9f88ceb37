//! Which local binary an image stands for, and a container's argv (pure functions).

use std::path::{Path, PathBuf};

use super::Registry;

/// The binary `image` stands for: `{address}/{user}/{name}[:tag][@digest]` where `name` is one
/// of `images`. Anything else is the message a kubelet would report with `ErrImagePull`.
pub fn resolve_image<'a>(
    image: &str,
    registry: &Registry,
    images: &'a [(String, PathBuf)],
) -> Result<&'a Path, String> {
    let not_found = || {
        format!(
            "failed to pull image \"{image}\": not found in registry {}/{}",
            registry.address.trim_end_matches('/'),
            registry.user
        )
    };
    let prefix = format!(
        "{}/{}/",
        registry.address.trim_end_matches('/'),
        registry.user
    );
    let rest = image.strip_prefix(&prefix).ok_or_else(not_found)?;
    let without_digest = rest.split('@').next().unwrap_or_default();
    let name = without_digest.split(':').next().unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        return Err(not_found());
    }
    images
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, path)| path.as_path())
        .ok_or_else(not_found)
}

/// The repository name of an image under any registry (`a/b/name:tag` → `name`).
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    last.split(':').next().unwrap_or_default()
}

/// The program and arguments of a container, as a kubelet builds them: `command` replaces the
/// image's entrypoint (the binary itself) and `args` follow. The image holds only its binary, so
/// `command[0]` must name it: the image's name, the binary's file name, or any path ending in
/// either (`/usr/local/bin/bursting-engine`). Otherwise the start fails like an `exec` in the
/// container would.
pub fn container_argv(
    binary: &Path,
    image: &str,
    command: &[String],
    args: &[String],
) -> Result<(PathBuf, Vec<String>), String> {
    let Some((first, rest)) = command.split_first() else {
        return Ok((binary.to_owned(), args.to_vec()));
    };
    let base = first.rsplit('/').next().unwrap_or_default();
    let binary_name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !base.is_empty() && (base == image_name(image) || base == binary_name) {
        let mut argv = rest.to_vec();
        argv.extend(args.iter().cloned());
        return Ok((binary.to_owned(), argv));
    }
    Err(if first.contains('/') {
        format!(
            "exec: \"{first}\": stat {first}: no such file or directory (the image holds only {binary_name})"
        )
    } else {
        format!(
            "exec: \"{first}\": executable file not found in $PATH (the image holds only {binary_name})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry {
            address: "registry.example:5000".into(),
            user: "burst".into(),
        }
    }

    fn images() -> Vec<(String, PathBuf)> {
        vec![(
            "bursting-engine".into(),
            PathBuf::from("/work/target/debug/bursting-engine"),
        )]
    }

    #[test]
    fn an_image_of_the_registry_and_user_resolves_with_any_tag_or_digest() {
        let images = images();
        for image in [
            "registry.example:5000/burst/bursting-engine:1.5.18",
            "registry.example:5000/burst/bursting-engine",
            "registry.example:5000/burst/bursting-engine@sha256:abcd",
            "registry.example:5000/burst/bursting-engine:1.5@sha256:abcd",
        ] {
            assert_eq!(
                resolve_image(image, &registry(), &images).unwrap(),
                Path::new("/work/target/debug/bursting-engine"),
                "{image}"
            );
        }
    }

    #[test]
    fn other_registries_users_and_names_are_not_found_like_a_pull() {
        let images = images();
        for image in [
            "docker.io/library/bursting-engine:1",
            "registry.example:5000/other/bursting-engine:1",
            "registry.example:5000/burst/nginx:1",
            "registry.example:5000/burst/sub/bursting-engine:1",
            "bursting-engine:1",
        ] {
            let err = resolve_image(image, &registry(), &images).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "failed to pull image \"{image}\": not found in registry registry.example:5000/burst"
                )
            );
        }
    }

    #[test]
    fn command_replaces_the_entrypoint_and_must_name_the_binary() {
        let bin = Path::new("/opt/bin/bursting-engine");
        let image = "r/u/bursting-engine:1";
        let args = vec!["--listen".to_owned(), "x".to_owned()];
        assert_eq!(
            container_argv(bin, image, &[], &args).unwrap(),
            (bin.to_owned(), args.clone())
        );
        let command = vec!["/usr/local/bin/bursting-engine".into(), "webhook".into()];
        assert_eq!(
            container_argv(bin, image, &command, &args).unwrap().1,
            vec!["webhook", "--listen", "x"]
        );
        let python = Path::new("/usr/bin/python3.11");
        assert!(container_argv(python, "r/u/python3:3", &["python3".into()], &[]).is_ok());
        assert!(container_argv(python, "r/u/py:3", &["python3.11".into()], &[]).is_ok());
        let err = container_argv(bin, image, &["sh".into()], &[]).unwrap_err();
        assert!(err.contains("executable file not found"), "{err}");
        let err = container_argv(bin, image, &["/bin/sh".into()], &[]).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }
}
