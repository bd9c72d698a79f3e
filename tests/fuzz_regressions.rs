//! Every committed fuzz seed and every past fuzz finding (fixtures/fuzz/<target>/, findings
//! named `regress-*`) through the same checks the fuzz targets make, in the ordinary suite.
//! `scripts/fuzz.sh` searches for new ones.

#[path = "fuzz/checks.rs"]
mod checks;

fn each_input(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            panic!("{} fails its fuzz check again", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn seeds_and_past_findings_pass_every_fuzz_check() {
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 5] = [
        ("wav_decode", checks::wav_decode),
        ("manifest", checks::manifest),
        ("config", checks::config),
        ("model_readers", checks::model_readers),
        ("pii_text", checks::pii_text),
    ];
    for (target, check) in targets {
        assert!(each_input(target, check) >= 2, "{target} has seeds");
    }
    let findings = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz/pii_text"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("regress-"))
        .count();
    assert!(findings >= 4);
}
