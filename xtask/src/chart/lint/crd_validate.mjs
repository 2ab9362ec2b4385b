// Validates custom resources against their CRDs' OpenAPI schemas, compiled into the
// @kubernetes-models packages pinned in xtask/node/package.json. `cargo xtask chart lint` embeds
// this file, writes it next to target/node/node_modules (where its imports resolve) and runs it
// with [{"source": "...", "object": {...}}] as JSON on stdin; problems go to stderr, exit code 1.
import { readFileSync } from "node:fs";

const PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};

const items = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const { source, object } of items) {
  const [group, version] = object.apiVersion.split("/");
  const where = `${source}: ${object.kind} ${object.metadata?.name} (${object.apiVersion})`;
  const pkg = PACKAGES[group];
  if (!pkg) {
    console.error(`${where}: no CRD schema package for API group ${group}`);
    failed++;
    continue;
  }
  let Model;
  try {
    Model = (await import(`${pkg}/${group}/${version}/${object.kind}`))[object.kind];
  } catch (e) {
    console.error(`${where}: the CRD has no such kind or version (${e.code ?? e.message})`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`valid: ${where}`);
  } catch (e) {
    console.error(`${where}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
