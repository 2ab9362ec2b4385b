# Drives the real Helm v4 engine (helm-python-sdk's libhelm) for `cargo xtask chart ...`, which
# embeds this file and runs it with the venv's python. One subcommand per engine operation; errors
# go to stderr and exit 1, so xshell reports them with the command that failed.
import json
import os
import sys

import helm_python as helm


def read_values(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return helm.values_from_yaml(f.read())


def render_one(chart, values, name, namespace):
    """All rendered manifests (hooks included, NOTES.txt left out) as one multi-document YAML."""
    rendered = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs = []
    for path in sorted(rendered):
        text = rendered[path]
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        docs.append(f"# Source: {path}\n{text.strip()}\n")
    return "---\n".join(docs)


def cmd_render(chart_dir, out_dir, name, namespace, *cases):
    """cases: `label=values.yaml` or `label=` (defaults); writes OUT_DIR/label.yaml each."""
    chart = helm.Chart.load(chart_dir)
    os.makedirs(out_dir, exist_ok=True)
    for case in cases:
        label, _, path = case.partition("=")
        try:
            manifest = render_one(chart, read_values(path), name, namespace)
        except helm.HelmError as e:
            sys.exit(f"rendering {chart_dir} with {path or 'default values'} failed: {e}")
        with open(os.path.join(out_dir, f"{label}.yaml"), "w", encoding="utf-8") as f:
            f.write(manifest)
        print(f"rendered {label}: {manifest.count('# Source: ')} templates")


def cmd_lint(chart_dir, kube_version, *values_files):
    """`helm lint --strict` for each values file (no file: defaults)."""
    failed = False
    for path in values_files or ("",):
        report = helm.lint(chart_dir, read_values(path), strict=True, kube_version=kube_version)
        for m in report["messages"]:
            # Severity 1 is INFO; with --strict, WARNING (2) and ERROR (3) fail like the helm CLI.
            level = {1: "INFO", 2: "WARNING", 3: "ERROR"}.get(m["severity"], "UNKNOWN")
            print(f"[{level}] {m['path']}: {m['error']} (values: {path or 'defaults'})")
            failed |= m["severity"] >= 2
        for e in report["errors"]:
            print(f"[ERROR] {e} (values: {path or 'defaults'})")
            failed = True
    if failed:
        sys.exit(f"helm lint --strict found problems in {chart_dir} (kube {kube_version})")
    print(f"helm lint --strict: {chart_dir} clean for Kubernetes {kube_version}")


def cmd_refuse(chart_dir, *bad_files):
    """Each file must be refused (schema or template check) with the message its first
    `# expect: ...` line names."""
    chart = helm.Chart.load(chart_dir)
    failed = []
    for path in bad_files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        expect = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("# expect:")]
        if not expect:
            failed.append(f"{path}: has no `# expect: <message part>` line")
            continue
        try:
            render_one(chart, helm.values_from_yaml(text), "visit-tracker", "default")
        except helm.HelmError as e:
            message = str(e)
            if expect[0] in message:
                print(f"refused {os.path.basename(path)}: {' '.join(message.split())}")
            else:
                failed.append(f"{path}: refused, but the message lacks {expect[0]!r}: {message}")
            continue
        failed.append(f"{path}: the chart accepted these bad values")
    if failed:
        sys.exit("\n".join(failed))


def cmd_load(archive, name, namespace):
    """Load a packaged chart like `helm install` would, and render it with its defaults."""
    with open(archive, "rb") as f:
        chart = helm.Chart.load_archive(f.read())
    manifest = render_one(chart, None, name, namespace)
    print(json.dumps({"name": chart.name, "version": chart.version,
                      "templates": manifest.count("# Source: ")}))


def cmd_helm_package(chart_dir, dest):
    """Helm's own `helm package`, for comparing file sets with ours."""
    print(helm.package(chart_dir, destination=dest))


def cmd_pull(ref, version, dest, plain_http="plain-http"):
    """`helm pull REF --version VERSION -d DEST` (plain HTTP for a loopback registry unless the
    last argument says `https`), then load and render the pulled archive like `helm install`."""
    try:
        result = helm.pull(ref, version=version, destination=dest,
                           plain_http=plain_http == "plain-http")
    except helm.HelmError as e:
        sys.exit(f"helm pull {ref} --version {version} failed: {e}")
    archives = [f for f in os.listdir(dest) if f.endswith(".tgz")]
    if len(archives) != 1:
        sys.exit(f"helm pull {ref}: expected one .tgz in {dest}, found {archives} ({result})")
    with open(os.path.join(dest, archives[0]), "rb") as f:
        chart = helm.Chart.load_archive(f.read())
    manifest = render_one(chart, None, chart.name, "default")
    print(json.dumps({"file": archives[0], "name": chart.name, "version": chart.version,
                      "templates": manifest.count("# Source: ")}))


COMMANDS = {
    "render": cmd_render,
    "lint": cmd_lint,
    "refuse": cmd_refuse,
    "load": cmd_load,
    "helm-package": cmd_helm_package,
    "pull": cmd_pull,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
