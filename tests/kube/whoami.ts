/**
 * A tiny program for kubeconfig_test.ts: connects the way `f2s serve` does (resolveConnection
 * with `--kubeconfig` = the first argument, or the environment when none) and prints who the
 * API server says we are. Run as a child process so the test sees what a user would see on
 * the terminal (an exec plugin's prompt on stderr) while the plugin is still waiting.
 */

import { createKubeClient } from "../../control/kube/client.ts";
import { resolveConnection } from "../../control/kube/connection.ts";

const client = createKubeClient(resolveConnection({ kubeconfig: Deno.args[0] }));
try {
  const review = await client.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    apiVersion: "authentication.k8s.io/v1",
    kind: "SelfSubjectReview",
  });
  console.log(JSON.stringify(review.status.userInfo));
} finally {
  client.close();
}
