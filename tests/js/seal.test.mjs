// The browser's sealing (src/server/ui/assets/seal.js) against the known answers in
// tests/vectors/seal.json, which the server's `core::seal` opens in its own tests; and the
// vendored HPKE library against RFC 9180's published vector A.1.1. Run by `.ci/run` with
// `node --test tests/js/` when Node is present.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
} from "../../src/server/ui/assets/hpke-core-1.9.0.js";
import { aad, base64, INFO, seal } from "../../src/server/ui/assets/seal.js";

const known = JSON.parse(readFileSync(new URL("../vectors/seal.json", import.meta.url), "utf8"));
const hex = (text) => Uint8Array.from(text.match(/../g), (b) => parseInt(b, 16));
const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});
const key = {
  key_id: known.key_id,
  public_key: base64(hex(known.recipient_public)),
};

test("the vendored HPKE gives RFC 9180 A.1.1's published answer", async () => {
  const v = known.rfc9180_a_1_1;
  const sender = await suite.createSenderContext({
    recipientPublicKey: await suite.kem.deserializePublicKey(hex(v.pkRm)),
    info: hex(v.info),
    ekm: hex(v.ikmE),
  });
  assert.deepEqual(new Uint8Array(sender.enc), hex(v.pkEm));
  assert.deepEqual(new Uint8Array(await sender.seal(hex(v.pt), hex(v.aad))), hex(v.ct));
  const recipient = await suite.createRecipientContext({
    recipientKey: await suite.kem.deserializePrivateKey(hex(v.skRm)),
    enc: hex(v.pkEm),
    info: hex(v.info),
  });
  assert.deepEqual(new Uint8Array(await recipient.open(hex(v.ct), hex(v.aad))), hex(v.pt));
});

test("seal.js states the same info and suite as the server", () => {
  assert.equal(INFO, known.info);
  assert.equal(known.suite, "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM");
});

for (const v of known.vectors) {
  test(`seal.js gives the known answer for ${v.scope}/${v.name}`, async () => {
    const mine = { ...key, team: v.team, owner: v.owner };
    assert.equal(
      aad({ team: v.team, scope: v.scope, owner: v.owner, name: v.name, keyId: known.key_id }),
      v.aad,
    );
    const sealed = await seal(mine, v.scope, v.name, v.value, hex(v.ephemeral_ikm));
    assert.deepEqual(sealed, v.sealed_value);
  });
}

test("a value sealed for one name is not the one sealed for another", async () => {
  const v = known.vectors[0];
  const mine = { ...key, team: v.team, owner: v.owner };
  const ephemeral = hex(v.ephemeral_ikm);
  const other = await seal(mine, v.scope, `${v.name}_2`, v.value, ephemeral);
  assert.equal(other.enc, v.sealed_value.enc, "same ephemeral key");
  assert.notEqual(other.ciphertext, v.sealed_value.ciphertext, "the name is bound");
});

test("a team secret binds no owner, even when the key names one", () => {
  const text = aad({ team: "1", scope: "team", owner: "42", name: "A", keyId: "k" });
  assert.ok(text.includes("\nowner=\n"), text);
});

test("without a fixed ephemeral key every seal differs", async () => {
  const mine = { ...key, team: "1", owner: null };
  const a = await seal(mine, "team", "A", "same value");
  const b = await seal(mine, "team", "A", "same value");
  assert.notEqual(a.enc, b.enc);
  assert.notEqual(a.ciphertext, b.ciphertext);
});
