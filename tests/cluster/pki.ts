/**
 * Certificates, keys and kubeconfigs for one test cluster, made with the openssl command:
 * a CA, the API server's serving certificate, the service-account signing key, and one
 * client certificate per identity (admin, controller manager, scheduler, node).
 */

export interface Identity {
  /** File stem under the pki folder, e.g. "admin". */
  name: string;
  /** Subject CN: the Kubernetes user name. */
  user: string;
  /** Subject O entries: the Kubernetes groups. */
  groups?: string[];
}

export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  saKey: string;
  saPub: string;
  /** Client certificate and key per identity name. */
  clients: Record<string, { cert: string; key: string }>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdin: "null" }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`openssl ${args.slice(0, 2).join(" ")} failed: ${err}`);
  }
}

function ecKey(cwd: string, file: string) {
  return openssl([
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    file,
  ], cwd);
}

function subject(id: { user: string; groups?: string[] }): string {
  const escape = (s: string) => s.replace(/[\\/,+=<>#;"]/g, (c) => `\\${c}`);
  return (id.groups ?? []).map((g) => `/O=${escape(g)}`).join("") + `/CN=${escape(id.user)}`;
}

async function issue(
  dir: string,
  stem: string,
  subj: string,
  extensions: string[],
): Promise<{ cert: string; key: string }> {
  await ecKey(dir, `${stem}.key`);
  await openssl(["req", "-new", "-key", `${stem}.key`, "-subj", subj, "-out", `${stem}.csr`], dir);
  await Deno.writeTextFile(`${dir}/${stem}.ext`, extensions.join("\n") + "\n");
  const serial = "0x" + [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("").replace(/^[89a-f]/, "1");
  await openssl([
    "x509",
    "-req",
    "-in",
    `${stem}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-set_serial",
    serial,
    "-days",
    "30",
    "-sha256",
    "-extfile",
    `${stem}.ext`,
    "-out",
    `${stem}.crt`,
  ], dir);
  await Deno.remove(`${dir}/${stem}.csr`);
  await Deno.remove(`${dir}/${stem}.ext`);
  return { cert: `${dir}/${stem}.crt`, key: `${dir}/${stem}.key` };
}

/**
 * Makes the CA, the serving certificate (valid for `serverIps` and the in-cluster names of
 * the `kubernetes` Service), the service-account key pair and a client certificate for
 * each identity, all under `dir`.
 */
export async function createPki(
  dir: string,
  serverIps: string[],
  identities: Identity[],
): Promise<ClusterPki> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await ecKey(dir, "ca.key");
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    "ca.key",
    "-sha256",
    "-days",
    "30",
    "-subj",
    "/CN=f2s-test-cluster-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    "-out",
    "ca.crt",
  ], dir);
  const names = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
  ];
  const san = [...serverIps.map((ip) => `IP:${ip}`), ...names.map((n) => `DNS:${n}`)].join(",");
  const [server, ...clients] = await Promise.all([
    issue(dir, "apiserver", "/CN=kube-apiserver", [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
    ]),
    ...identities.map((id) =>
      issue(dir, id.name, subject(id), [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=clientAuth",
      ])
    ),
    openssl(
      ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"],
      dir,
    )
      .then(() => openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir))
      .then(() => ({ cert: "", key: "" })),
  ]);
  const byName: ClusterPki["clients"] = {};
  identities.forEach((id, i) => byName[id.name] = clients[i]);
  return {
    dir,
    caCert: `${dir}/ca.crt`,
    caKey: `${dir}/ca.key`,
    serverCert: server.cert,
    serverKey: server.key,
    saKey: `${dir}/sa.key`,
    saPub: `${dir}/sa.pub`,
    clients: byName,
  };
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * Writes a kubeconfig for `server` with the CA and the client credential embedded, so the
 * file keeps working when copied elsewhere.
 */
export async function writeKubeconfig(
  path: string,
  server: string,
  caCert: string,
  client: { cert: string; key: string },
  user: string,
): Promise<void> {
  const [ca, cert, key] = await Promise.all(
    [caCert, client.cert, client.key].map((f) => Deno.readTextFile(f)),
  );
  const text = `apiVersion: v1
kind: Config
clusters:
  - name: f2s-test
    cluster:
      server: ${server}
      certificate-authority-data: ${base64(ca)}
users:
  - name: ${user}
    user:
      client-certificate-data: ${base64(cert)}
      client-key-data: ${base64(key)}
contexts:
  - name: f2s-test
    context:
      cluster: f2s-test
      user: ${user}
      namespace: default
current-context: f2s-test
`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
}
