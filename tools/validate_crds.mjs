// Validates the custom resources clipmesh ships against their CRD schemas, offline, with the
// schemas packaged by @kubernetes-models (package.json): prometheus-operator's (PodMonitor,
// ServiceMonitor, PrometheusRule) and cert-manager's (Certificate, Issuer). Kubernetes' own
// kinds are validated by kubernetes-validate (PyPI) instead.
//
//   node tools/validate_crds.mjs < objects.json   # a JSON array of objects
//
// Prints one line per object ("ok KIND/NAME" or "invalid KIND/NAME: why") and exits 1 when
// any object is invalid or of a kind it has no schema for.
import { readFileSync } from "node:fs";
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

let failed = false;
for (const object of JSON.parse(readFileSync(0, "utf-8"))) {
  const label = `${object.kind}/${object.metadata?.name}`;
  const Model = MODELS[`${object.apiVersion} ${object.kind}`];
  if (Model === undefined) {
    console.log(`invalid ${label}: no schema for ${object.apiVersion} ${object.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${label}`);
  } catch (error) {
    console.log(`invalid ${label}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
