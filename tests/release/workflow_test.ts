/**
 * The release workflow (.github/workflows/release.yml): actionlint, built from its Go module
 * by tests/deps/actionlint.sh, finds nothing wrong in it (and does find a broken copy's
 * mistake), and it publishes what the chart and the docs point at: binaries for both Linux
 * targets, both images for both platforms from stages the Dockerfile has, the image name the
 * chart deploys by default, and the Deno and Helm versions the project pins.
 */

import { parse as parseYaml } from "yaml";
import { cacheRoot, readVersions } from "../cluster/binaries.ts";
import { assert, assertEquals, assertMatch } from "../harness/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const WORKFLOW = `${ROOT}.github/workflows/release.yml`;

async function actionlint(): Promise<string> {
  const script = await Deno.readTextFile(`${ROOT}tests/deps/actionlint.sh`);
  const version = /^VERSION=(\S+)$/m.exec(script)?.[1];
  assert(version, "tests/deps/actionlint.sh names its version");
  return `${cacheRoot()}/actionlint/${version}/actionlint`;
}

async function lint(bin: string, cwd: string): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command(bin, {
    args: ["-no-color", ".github/workflows/release.yml"],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, out: text.decode(out.stdout) + text.decode(out.stderr) };
}

Deno.test("release workflow: actionlint finds nothing wrong, and catches a broken copy", async () => {
  const bin = await actionlint();
  const ok = await lint(bin, ROOT);
  assertEquals(ok.code, 0, `actionlint:\n${ok.out}`);

  // The same file with a job depending on one that does not exist: actionlint really checks.
  const tmp = await Deno.makeTempDir({ prefix: "f2s-actionlint-" });
  try {
    await Deno.mkdir(`${tmp}/.github/workflows`, { recursive: true });
    const text = await Deno.readTextFile(WORKFLOW);
    assert(text.includes("needs: [version, images]"));
    await Deno.writeTextFile(
      `${tmp}/.github/workflows/release.yml`,
      text.replace("needs: [version, images]", "needs: [version, imagez]"),
    );
    const broken = await lint(bin, tmp);
    assertEquals(broken.code, 1, broken.out);
    assertMatch(broken.out, /imagez/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("release workflow: publishes the binaries, images and chart the docs promise", async () => {
  // deno-lint-ignore no-explicit-any
  const wf = parseYaml(await Deno.readTextFile(WORKFLOW)) as any;
  assertEquals(wf.on.push.tags, ["v*.*.*"]);
  const steps = (job: string) => JSON.stringify(wf.jobs[job].steps);

  assertEquals(wf.jobs.binaries.strategy.matrix.target, [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
  ]);
  assertMatch(steps("binaries"), /deno compile -A --target \\"\$TARGET\\" --include ui/);
  assertMatch(steps("github-release"), /gh release create/);

  const images = wf.jobs.images;
  assertEquals(images.permissions.packages, "write");
  const stages = [
    ...(await Deno.readTextFile(`${ROOT}Dockerfile`)).matchAll(/^FROM .* AS (\S+)$/gm),
  ]
    .map((m) => m[1]);
  const built = images.strategy.matrix.include as { target: string; image: string }[];
  assertEquals(built.map((b) => b.image).sort(), ["f2s", "f2s-fizzlet"]);
  for (const b of built) assert(stages.includes(b.target), `Dockerfile stage ${b.target}`);
  const push = images.steps.find((s: { uses?: string }) => s.uses?.startsWith("docker/build-push"));
  assertEquals(push.with.platforms, "linux/amd64,linux/arm64");
  assertEquals(
    push.with.tags,
    "ghcr.io/${{ needs.version.outputs.owner }}/${{ matrix.image }}:${{ needs.version.outputs.version }}",
  );

  // The chart deploys that image at its appVersion, which the workflow sets to the tag's.
  // deno-lint-ignore no-explicit-any
  const values = parseYaml(await Deno.readTextFile(`${ROOT}helm/values.yaml`)) as any;
  assertMatch(values.image.repository, /^ghcr\.io\/[a-z0-9-]+\/f2s$/);
  assertEquals(values.image.tag, "");
  assertMatch(
    steps("chart"),
    /helm package helm --version \\"\$VERSION\\" --app-version \\"\$VERSION\\"/,
  );
  assertMatch(steps("chart"), /helm repo index pages\/helm-release --url/);
  assertMatch(steps("chart"), /git -C pages push origin gh-pages/);

  // The versions the project pins.
  const pkg = JSON.parse(await Deno.readTextFile(`${ROOT}package.json`));
  assertEquals(wf.env.DENO_VERSION, `v${pkg.devDependencies.deno}`);
  assertMatch(
    await Deno.readTextFile(`${ROOT}Dockerfile`),
    new RegExp(
      `FROM --platform=\\$BUILDPLATFORM denoland/deno:${pkg.devDependencies.deno} AS build`,
    ),
  );
  assertEquals(wf.env.HELM_VERSION, readVersions().HELM_VERSION);
});
