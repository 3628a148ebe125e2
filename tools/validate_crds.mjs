// Validates the custom resources clipmesh ships against their CRD schemas, offline. Most
// schemas come packaged by @kubernetes-models (package.json): prometheus-operator's
// (PodMonitor, ServiceMonitor, PrometheusRule) and cert-manager's (Certificate, Issuer).
// CloudNativePG's Cluster and KubeRay's RayJob have no such package: their CRDs' schemas are
// kept in tools/crds/ (tools/vendor_crd.py) and checked with Ajv as under the API server's
// strict field validation, where an unknown field is an error rather than silently dropped
// (the schema's CEL rules are not evaluated). Kubernetes' own kinds are validated by
// kubernetes-validate (PyPI) instead.
//
//   node tools/validate_crds.mjs < objects.json   # a JSON array of objects
//
// Prints one line per object ("ok KIND/NAME" or "invalid KIND/NAME: why") and exits 1 when
// any object is invalid or of a kind it has no schema for.
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate";
import { Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer";

// "apiVersion kind" → model.
const MODELS = {
  "monitoring.coreos.com/v1 PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1 PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1 ServiceMonitor": ServiceMonitor,
  "cert-manager.io/v1 Certificate": Certificate,
  "cert-manager.io/v1 Issuer": Issuer,
};

// "apiVersion kind" → the CRD schema in tools/crds/.
const VENDORED = {
  "postgresql.cnpg.io/v1 Cluster": "postgresql.cnpg.io_v1_Cluster.json",
  "ray.io/v1 RayJob": "ray.io_v1_RayJob.json",
};

// Objects with declared properties take no others, unless the schema keeps unknown fields
// (x-kubernetes-preserve-unknown-fields) or says what other keys hold (additionalProperties).
function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const result = {};
  for (const [key, value] of Object.entries(schema)) {
    result[key] = key === "properties"
      ? Object.fromEntries(Object.entries(value).map(([name, prop]) => [name, strict(prop)]))
      : strict(value);
  }
  if (result.properties && !("additionalProperties" in result)
      && !result["x-kubernetes-preserve-unknown-fields"]) {
    result.additionalProperties = false;
  }
  return result;
}

// strict: false lets Ajv pass over the x-kubernetes-* keywords it does not know.
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const compiled = {};
function vendoredValidator(key) {
  if (!(key in compiled)) {
    const path = new URL(`crds/${VENDORED[key]}`, import.meta.url);
    compiled[key] = ajv.compile(strict(JSON.parse(readFileSync(path, "utf-8"))));
  }
  return compiled[key];
}

function problems(object) {
  const key = `${object.apiVersion} ${object.kind}`;
  if (key in MODELS) {
    try {
      new MODELS[key](object).validate();
      return null;
    } catch (error) {
      return error.message;
    }
  }
  if (key in VENDORED) {
    const validate = vendoredValidator(key);
    if (validate(object)) return null;
    return validate.errors
      .map(({ instancePath, message, params }) =>
        `data${instancePath} ${message}` +
        (params.additionalProperty ? `: ${params.additionalProperty}` : ""))
      .join(", ");
  }
  return `no schema for ${object.apiVersion} ${object.kind}`;
}

let failed = false;
for (const object of JSON.parse(readFileSync(0, "utf-8"))) {
  const label = `${object.kind}/${object.metadata?.name}`;
  const why = problems(object);
  console.log(why === null ? `ok ${label}` : `invalid ${label}: ${why}`);
  failed ||= why !== null;
}
process.exit(failed ? 1 : 0);
