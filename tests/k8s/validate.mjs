// Validates the documents `corral export argo` writes with the schemas of kubernetes-models and
// @kubernetes-models/argo-workflows.
//
//   node validate.mjs MANIFEST.yaml [--json MANIFEST.jsonl]
//
// With --json, the YAML stream must also read back as exactly the documents of the JSON output
// (so the YAML writer loses nothing). Exit 0 when every document is valid; 1 otherwise, with
// what is wrong on stderr.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Workflow } from "@kubernetes-models/argo-workflows/argoproj.io/v1alpha1/Workflow";

const models = {
  "v1/ConfigMap": ConfigMap,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "argoproj.io/v1alpha1/Workflow": Workflow,
};

const args = process.argv.slice(2);
const yamlFile = args[0];
const jsonFile = args[1] === "--json" ? args[2] : undefined;
let failed = false;
const fail = (msg) => {
  console.error(`validate: ${msg}`);
  failed = true;
};

const parsed = parseAllDocuments(readFileSync(yamlFile, "utf8"));
const docs = [];
for (const d of parsed) {
  if (d.errors.length) fail(`${yamlFile}: ${d.errors.map((e) => e.message).join("; ")}`);
  docs.push(d.toJS());
}
if (docs.length === 0) fail(`${yamlFile}: no documents`);
const counts = {};
for (const doc of docs) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const Model = models[key];
  const name = doc.metadata?.name ?? doc.metadata?.generateName;
  if (!Model) {
    fail(`${key} ${name}: not a kind corral writes`);
    continue;
  }
  try {
    new Model(doc).validate();
    counts[doc.kind] = (counts[doc.kind] ?? 0) + 1;
  } catch (e) {
    fail(`${key} ${name}: ${e.message}`);
  }
}
if (jsonFile) {
  const lines = readFileSync(jsonFile, "utf8").split("\n").filter((l) => l.length);
  const fromJson = lines.map((l) => JSON.parse(l));
  if (!isDeepStrictEqual(fromJson, docs)) fail(`${yamlFile} and ${jsonFile} hold different documents`);
}
if (failed) process.exit(1);
console.log(`validate: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ")}: valid`);
