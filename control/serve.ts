/**
 * `f2s serve`: the control plane on Kubernetes (Function resources, Deployments,
 * EndpointSlices, leader election). The Kubernetes runtime is not built yet; until it is,
 * this command says so instead of pretending to run.
 */

export function main(_args: string[]): Promise<number> {
  console.error(
    "f2s serve: the Kubernetes runtime is not available in this build yet; use `f2s dev` to run F2S on one machine.",
  );
  return Promise.resolve(1);
}
