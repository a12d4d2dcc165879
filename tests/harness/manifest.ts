/**
 * A Function manifest for tests, as a folder store or the API takes it: endpoint
 * `/NAME`, any method, a placeholder image, and the test's own `target` fields (local
 * command and folder, replicas, scaling, env), so each suite states only what it varies.
 */

export function testFunction(
  name: string,
  target: Record<string, unknown>,
  spec: Record<string, unknown> = {},
) {
  return {
    apiVersion: "f2s.opensight.ch/v1alpha1",
    kind: "Function",
    metadata: { name, namespace: "f2s" },
    spec: { endpoint: `/${name}`, method: "ANY", ...spec },
    target: { containerImage: `f2s-tests/${name}:latest`, ...target },
  };
}
