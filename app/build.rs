//! Builds app/c/x86_64_memcpy.c into the static x86_64 musl binary (the image's amd64
//! binary): faster memcpy and memmove than musl's. Other targets keep their libc's.

fn main() {
    println!("cargo::rerun-if-changed=c/x86_64_memcpy.c");
    let target = |name: &str| std::env::var(format!("CARGO_CFG_TARGET_{name}")).unwrap_or_default();
    if target("ENV") == "musl" && target("ARCH") == "x86_64" {
        cc::Build::new()
            .file("c/x86_64_memcpy.c")
            .flag("-ffreestanding")
            .opt_level(2)
            .compile("x86_64_memcpy");
    }
}
