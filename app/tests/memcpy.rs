//! The image's amd64 binary takes memcpy and memmove from app/c/x86_64_memcpy.c instead of
//! musl's: here they are built with clang under other names and checked against a byte-by-byte
//! copy by app/c/memcpy_check.c (sizes, alignments, overlaps both ways, bytes around untouched).
#![cfg(target_arch = "x86_64")]

use std::path::Path;
use std::process::Command;

use testkit::describe;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("starting a command");
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn memcpy_and_memmove_copy_like_a_byte_loop() {
    let clang = testkit::require_program("clang");
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    // Cargo's scratch directory for integration tests, inside the target directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("memcpy-check");
    std::fs::create_dir_all(&dir).unwrap();
    let object = dir.join("x86_64_memcpy.o");
    let check = dir.join("memcpy_check");
    // The flags app/build.rs compiles it with, and the names the check calls.
    run(Command::new(&clang)
        .args([
            "-O2",
            "-ffreestanding",
            "-Dmemcpy=vt_memcpy",
            "-Dmemmove=vt_memmove",
            "-c",
        ])
        .arg(c.join("x86_64_memcpy.c"))
        .arg("-o")
        .arg(&object));
    run(Command::new(&clang)
        .args(["-O2", "-Wall", "-Werror"])
        .arg(c.join("memcpy_check.c"))
        .arg(&object)
        .arg("-o")
        .arg(&check));
    let said = run(&mut Command::new(&check));
    assert!(said.contains("agree with a byte-by-byte copy"), "{said}");
}
