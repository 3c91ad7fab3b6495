// Seals a secret value in the browser before it is sent (DESIGN §12): HPKE base mode, suite
// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, to the team's sealing public key
// (`GET /v1/seal-key`), with associated data binding team, scope, owner, name and key id.
// The server's `core::seal` opens it; tests/vectors/seal.json holds answers both sides check
// (tests/js/seal.test.mjs here, `core::seal`'s tests there).

import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "./hpke-core-1.9.0.js";

/** HPKE `info`: what the key is for. */
export const INFO = "latch/v1 secret value";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

/**
 * The associated data: the text `core::seal::aad` builds. `owner` is empty for a team secret.
 * @param {{team: string, scope: "team"|"personal", owner: string|null, name: string, keyId: string}} t
 */
export function aad({ team, scope, owner, name, keyId }) {
  const who = scope === "personal" ? (owner ?? "") : "";
  return `latch/v1 sealed value\nteam=${team}\nscope=${scope}\nowner=${who}\nname=${name}\nkey=${keyId}`;
}

/** Standard base64 of bytes. */
export function base64(bytes) {
  const view = new Uint8Array(bytes);
  let text = "";
  for (let i = 0; i < view.length; i += 0x8000) {
    text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function unbase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * Seals `value` (a string, sent as UTF-8) for the secret `scope`/`name` to `key`, the answer of
 * `GET /v1/seal-key`. `ephemeralIkm` (bytes from which RFC 9180 DeriveKeyPair makes the ephemeral key) is for
 * known-answer tests only.
 * @returns {Promise<{key_id: string, enc: string, ciphertext: string}>} the API's `sealed_value`
 */
export async function seal(key, scope, name, value, ephemeralIkm) {
  const recipientPublicKey = await suite.kem.deserializePublicKey(unbase64(key.public_key));
  const params = { recipientPublicKey, info: new TextEncoder().encode(INFO) };
  if (ephemeralIkm !== undefined) {
    params.ekm = ephemeralIkm;
  }
  const sender = await suite.createSenderContext(params);
  const bound = aad({ team: key.team, scope, owner: key.owner, name, keyId: key.key_id });
  const ciphertext = await sender.seal(
    new TextEncoder().encode(value),
    new TextEncoder().encode(bound),
  );
  return { key_id: key.key_id, enc: base64(sender.enc), ciphertext: base64(ciphertext) };
}
