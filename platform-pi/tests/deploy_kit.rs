//! The deployment kit end to end, on this machine: the host-architecture package is built with
//! `ci/package.sh` from the binary under test, checked, and installed with dpkg into a scratch
//! root; the installed units' command lines are run as systemd would run them (ExecStart with
//! `%i` and `$TESSERA_ARGS` from the unit's environment file, paths inside the scratch root);
//! a gateway and two edges on 127.0.99.x then run frames fed through a camera directory,
//! `tessera check` passes, one edge is stopped (SIGTERM, as `systemctl stop`) and restarted and
//! computes again, every node stops cleanly, and the package is purged.
//!
//! Needs root (dpkg's database) and dpkg: skipped with a printed reason otherwise. Assertions
//! are about events the processes print, never about elapsed time; waits are bounded only so a
//! broken cluster fails instead of hanging.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cluster_text, sample_image, write_small_cfg, Proc, Scratch};

/// Why this machine cannot run the test, if it cannot.
fn unsupported() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (dpkg needs its database)".into());
    }
    for tool in ["dpkg", "dpkg-deb", "readelf", "gzip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

/// Runs a command to its end; (success, stdout + stderr).
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A unit's command line for instance `instance`, as systemd would run it, with every path
/// under `/usr`, `/etc/tessera` and `/var/lib/tessera` moved into `root`.
fn unit_command(root: &Path, unit: &str, instance: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("usr/lib/systemd/system").join(unit)).unwrap();
    let value = |key: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{unit} has no {key}"))
            .replace("%i", instance)
    };
    let inside = |p: &str| {
        if ["/usr/", "/etc/tessera", "/var/lib/tessera"]
            .iter()
            .any(|top| p.starts_with(top))
        {
            root.join(&p[1..]).display().to_string()
        } else {
            p.to_string()
        }
    };
    // `Environment=TESSERA_ARGS=`, then the optional `EnvironmentFile=-...` overriding it.
    let mut args = value("Environment=TESSERA_ARGS=");
    let env_file = value("EnvironmentFile=-");
    if let Ok(env) = std::fs::read_to_string(inside(&env_file)) {
        if let Some(v) = env.lines().find_map(|l| l.strip_prefix("TESSERA_ARGS=")) {
            args = v.trim_matches('"').to_string();
        }
    }
    value("ExecStart=")
        .split_whitespace()
        .flat_map(|w| {
            if w == "$TESSERA_ARGS" {
                args.split_whitespace().map(inside).collect()
            } else {
                vec![inside(w)]
            }
        })
        .collect()
}

/// Starts a unit's command line in the unit's working directory.
fn start_unit(root: &Path, unit: &str, instance: &str) -> Proc {
    let cmd = unit_command(root, unit, instance);
    assert!(cmd[0].starts_with(&root.display().to_string()), "{cmd:?}");
    std::fs::create_dir_all(root.join("var/lib/tessera")).unwrap();
    Proc::spawn(Path::new(&cmd[0]), &cmd[1..], &[])
}

/// Puts one frame in the camera directory the way a capture tool should: written under a
/// hidden name, then renamed.
fn capture(camera: &Path, n: usize) {
    let tmp = camera.join(format!(".frame-{n:06}.jpg"));
    std::fs::copy(sample_image(), &tmp).unwrap();
    std::fs::rename(&tmp, camera.join(format!("frame-{n:06}.jpg"))).unwrap();
}

/// What a gateway line of a frame finished with boxes holds (`frame 1.N: ... boxes, tiles
/// [(1, 6), (2, 3)]`).
const FRAME_LINE: &str = " boxes, tiles [";

#[test]
fn the_host_package_installs_and_its_units_run_a_cluster_that_survives_a_restart() {
    if let Some(why) = unsupported() {
        println!("skipped: {why}");
        return;
    }
    let dir = Scratch::new("deploy-kit");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let (ok, arch) = run("dpkg", &["--print-architecture"]);
    assert!(ok, "{arch}");
    let arch = arch.trim();

    // Build and check the package of the binary under test.
    let out = dir.join("out");
    let (ok, built) = run(
        "bash",
        &[
            &format!("{repo}/ci/package.sh"),
            "build",
            arch,
            common::BIN,
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{built}");
    let deb = built.lines().last().unwrap().trim().to_string();
    let (ok, checked) = run("bash", &[&format!("{repo}/ci/package.sh"), "check", &deb]);
    assert!(ok, "{checked}");
    assert!(checked.contains("./usr/bin/tessera"), "{checked}");

    // Install it into a scratch root with dpkg (maintainer scripts run with DPKG_ROOT set).
    let root = dir.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let root_s = root.display().to_string();
    let dpkg = |args: &[&str]| {
        let mut all = vec![
            format!("--root={root_s}"),
            "--force-script-chrootless".into(),
            "--force-depends".into(),
            "--log=/dev/null".into(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run("dpkg", &all)
    };
    let (ok, installed) = dpkg(&["--install", &deb]);
    assert!(ok, "{installed}");
    let (ok, status) = dpkg(&["--status", "tessera"]);
    assert!(
        ok && status.contains("Status: install ok installed"),
        "{status}"
    );
    let conf = root.join("etc/tessera/cluster.toml");
    assert!(status.contains("/etc/tessera/cluster.toml"), "{status}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&conf.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o640, "the cluster file holds the key");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    if Path::new("/usr/bin/systemd-sysusers").exists() {
        assert!(passwd.contains("tessera:"), "no tessera user: {passwd}");
    }
    let tessera = root.join("usr/bin/tessera");
    let tessera_s = tessera.display().to_string();
    assert!(run(&tessera_s, &["--help"]).1.contains("check"));

    // The shipped cluster file has no key: check names the line.
    let conf_s = conf.display().to_string();
    let key_line = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .position(|l| l.trim_start().starts_with("key ="))
        .expect("the shipped cluster file has a key line")
        + 1;
    let (ok, said) = run(&tessera_s, &["check", "--cluster", &conf_s]);
    assert!(
        !ok && said.contains(&format!(":{key_line}: key must be 64 hex digits")),
        "{said}"
    );

    // One cluster file (a fresh key from the installed keygen), edge 1 fed by a camera dir.
    let (ok, key) = run(&tessera_s, &["keygen"]);
    assert!(ok, "{key}");
    let cfg = dir.join("yolo160.cfg");
    write_small_cfg(&cfg);
    std::fs::write(&conf, cluster_text([127, 0, 99], 2, key.trim(), 5, &cfg)).unwrap();
    let camera = root.join("var/lib/tessera/camera");
    std::fs::create_dir_all(&camera).unwrap();
    std::fs::write(
        root.join("etc/tessera/edge-1.env"),
        "TESSERA_ARGS=\"--input-dir /var/lib/tessera/camera\"\n",
    )
    .unwrap();
    assert_eq!(
        unit_command(&root, "tessera-edge@.service", "1")[1..],
        [
            "edge",
            "--cluster",
            &conf_s,
            "--id",
            "1",
            "--stats-every",
            "60",
            "--input-dir",
            &camera.display().to_string(),
        ]
    );

    // The units, in any order.
    let mut e2 = start_unit(&root, "tessera-edge@.service", "2");
    let mut gw = start_unit(&root, "tessera-gateway.service", "");
    let mut e1 = start_unit(&root, "tessera-edge@.service", "1");
    gw.wait_line("gateway up");
    e1.wait_line("edge 1 up, feeding frames from");
    e2.wait_line("edge 2 up");
    for n in 0..3 {
        capture(&camera, n);
    }
    gw.wait_count(FRAME_LINE, 3);
    let results = root.join("var/lib/tessera/results");
    let json = |results: &PathBuf| {
        std::fs::read_dir(results)
            .map(|d| d.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    assert!(json(&results) >= 3, "results in {}", results.display());
    e1.wait_count(": done in ", 3);
    assert_eq!(
        std::fs::read_dir(&camera).unwrap().count(),
        0,
        "frames consumed"
    );

    let (ok, table) = run(&tessera_s, &["check", "--cluster", &conf_s, "--id", "1"]);
    assert!(ok && table.contains("all 3 nodes ok"), "{table}");
    println!("{table}");

    // Stop edge 2 as systemd would, start it again: it rejoins and computes tiles.
    e2.terminate();
    assert_eq!(e2.wait_exit(), Some(0), "{}", e2.output());
    let before = gw.matching(FRAME_LINE).len();
    let mut e2 = start_unit(&root, "tessera-edge@.service", "2");
    e2.wait_line("edge 2 up");
    let mut n = 3;
    let computed_again = loop {
        capture(&camera, n);
        n += 1;
        let after = &gw.wait_count(FRAME_LINE, n)[before..];
        if after.iter().any(|l| l.contains("(2, ")) {
            break true;
        }
        if n >= 60 {
            break false;
        }
    };
    assert!(computed_again, "edge 2 computed nothing after its restart");

    // Every node stops cleanly on SIGTERM; no frame failed.
    for p in [&mut e1, &mut e2, &mut gw] {
        p.terminate();
        assert_eq!(p.wait_exit(), Some(0), "{}", p.output());
    }
    assert!(gw.matching("FAILED").is_empty(), "{}", gw.output());
    assert!(json(&results) >= n, "results in {}", results.display());

    // Purge: the binary, the units and the conffile go.
    let (ok, purged) = dpkg(&["--purge", "tessera"]);
    assert!(ok, "{purged}");
    assert!(!tessera.exists() && !conf.exists());
    assert!(!root
        .join("usr/lib/systemd/system/tessera-gateway.service")
        .exists());
}
