//! Key ring: generation, PEM formats, kid = RFC 7638 thumbprint, JWKS export/import, rotation.

#![allow(clippy::unwrap_used)] // test helpers

mod common;

use std::sync::Arc;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet, DEFAULT_MAX_KEYS, Jwk, KeySet};
use agentcube_auth_core::{ManualClock, Untrusted};
use agentcube_identity::{
    IdentityVerifier, Jwks, KeyError, KeyRing, SigningKey, TokenMinter, VerifierConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;

/// Mints with a ring built from `private_pem` and verifies through every kind of key source
/// built from `public_pem` and the ring's JWKS.
async fn round_trip(private_pem: &str, public_pem: &str, alg: Algorithm) {
    let key = SigningKey::from_pem(private_pem).unwrap();
    assert_eq!(key.algorithm(), alg);
    let kid = key.kid().to_owned();
    assert_eq!(key.public_jwk().thumbprint().as_deref(), Some(kid.as_str()));
    let public = Jwk::from_public_pem(public_pem).unwrap();
    assert_eq!(
        public.kid.as_deref(),
        Some(kid.as_str()),
        "same key, same kid"
    );
    assert_eq!(public.alg.as_deref(), Some(alg.as_str()));
    assert_eq!(public.key_use.as_deref(), Some("sig"));

    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(key));
    let minter = TokenMinter::new(ring.clone()).with_clock(clock.clone());
    let token = minter.identity_token(&alice()).unwrap();

    // 1. The ring itself (in-process).
    let v = IdentityVerifier::new(ring.clone()).with_clock(clock.clone());
    let who = v.verify(token.as_str()).await.unwrap();
    assert_eq!(
        (who.subject(), who.kid(), who.algorithm()),
        ("alice-id", kid.as_str(), alg)
    );
    // 2. The public PEM (a Kubernetes Secret's public.pem).
    let v = IdentityVerifier::new(KeyRing::from_public_pem(public_pem).unwrap())
        .with_clock(clock.clone());
    assert_eq!(v.verify(token.as_str()).await.unwrap().kid(), kid);
    // 3. The JWKS, imported as a plain auth-core KeySet.
    let (set, skipped) = KeySet::from_jwks(ring.jwks_json().as_bytes(), DEFAULT_MAX_KEYS).unwrap();
    assert!(skipped.is_empty());
    let v = IdentityVerifier::new(set).with_clock(clock.clone());
    assert_eq!(v.verify(token.as_str()).await.unwrap().algorithm(), alg);
    // 4. The JWKS, as a verify-only ring.
    let jwks: Jwks = serde_json::from_str(&ring.jwks_json()).unwrap();
    let v = IdentityVerifier::new(KeyRing::verify_only(jwks.keys).unwrap()).with_clock(clock);
    assert_eq!(
        v.verify(token.as_str()).await.unwrap().subject(),
        "alice-id"
    );
}

#[tokio::test]
async fn ed25519_pkcs8_v1_and_v2() {
    let pems = ed25519_pems();
    round_trip(&pems.private, &pems.public, Algorithm::EdDSA).await;
    // PKCS#8 v2 (with the public key) from aws-lc-rs's `to_pkcs8`.
    let key = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    let v2 = pem("PRIVATE KEY", key.to_pkcs8().unwrap().as_ref());
    let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'_>>::as_der(
        aws_lc_rs::signature::KeyPair::public_key(&key),
    )
    .unwrap();
    round_trip(&v2, &pem("PUBLIC KEY", spki.as_ref()), Algorithm::EdDSA).await;
}

#[tokio::test]
async fn p256_pkcs8_and_sec1() {
    let pems = p256_pems();
    round_trip(&pems.private, &pems.public, Algorithm::ES256).await;
    let sec1 = SigningKey::from_pem(&p256_sec1_pem()).unwrap();
    assert_eq!(sec1.algorithm(), Algorithm::ES256);
}

#[tokio::test]
async fn rsa_pkcs1_secret_shape_and_pkcs8() {
    let rsa = rsa();
    // A Router's Kubernetes Secret: PKCS#1 private.pem, SPKI public.pem.
    round_trip(&rsa.pkcs1_pem, &rsa.spki_pem, Algorithm::RS256).await;
    round_trip(&rsa.pkcs8_pem, &rsa.pkcs1_public_pem, Algorithm::RS256).await;
    assert_eq!(
        SigningKey::from_pem(&rsa.pkcs1_pem).unwrap().kid(),
        SigningKey::from_pem(&rsa.pkcs8_pem).unwrap().kid()
    );
}

#[tokio::test]
async fn generated_keys_round_trip_through_pkcs8_pem() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let again = SigningKey::from_pem(pem.expose_secret()).unwrap();
        assert_eq!((again.kid(), again.algorithm()), (key.kid(), alg));
        // Signatures from the reloaded key verify with the original's public key.
        let ring = KeyRing::verify_only([key.public_jwk().clone()]).unwrap();
        let minter = TokenMinter::new(KeyRing::new(again));
        let token = minter.identity_token(&alice()).unwrap();
        assert_eq!(
            IdentityVerifier::new(ring)
                .verify(token.as_str())
                .await
                .unwrap()
                .algorithm(),
            alg
        );
    }
}

#[test]
fn rfc8037_ed25519_thumbprint_is_the_kid() {
    // RFC 8037 A.1-A.3: the key and its RFC 7638 thumbprint.
    let d = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let x = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&d);
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&x);
    const THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
    let key = SigningKey::from_pkcs8_der(&pkcs8).unwrap();
    assert_eq!(key.kid(), THUMBPRINT);
    assert_eq!(
        key.public_jwk().x.as_deref(),
        Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    );
    let public = Jwk::from_spki_der(&spki).unwrap();
    assert_eq!(public.kid.as_deref(), Some(THUMBPRINT));
    assert_eq!(public.alg.as_deref(), Some("EdDSA"));
}

#[test]
fn unsupported_and_wrong_pem_inputs_are_refused_with_reasons() {
    let ed = ed25519_pems();
    assert_eq!(
        SigningKey::from_pem("not pem").unwrap_err(),
        KeyError::NotPem
    );
    assert_eq!(
        SigningKey::from_pem(&ed.public).unwrap_err(),
        KeyError::NotAPrivateKey
    );
    assert_eq!(
        Jwk::from_public_pem(&ed.private).unwrap_err(),
        KeyError::NotAPublicKey
    );
    assert_eq!(
        SigningKey::from_pem(&pem("ENCRYPTED PRIVATE KEY", b"x")).unwrap_err(),
        KeyError::Encrypted
    );
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(
        SigningKey::from_pem(legacy).unwrap_err(),
        KeyError::Encrypted
    );
    assert_eq!(
        SigningKey::from_pem(&pem("CERTIFICATE", b"x")).unwrap_err(),
        KeyError::UnsupportedPemLabel(Untrusted::new("CERTIFICATE"))
    );
    // secp256k1 (OID 1.3.132.0.10) is a well-formed key of an unsupported type, not a
    // "rejected" one: the PKCS#8 and SPKI algorithm identifiers name it.
    let k256_alg_id: &[u8] = &[
        0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81,
        0x04, 0x00, 0x0a,
    ];
    let k256_pkcs8 = [
        &[0x30, 0x1a, 0x02, 0x01, 0x00][..],
        k256_alg_id,
        &[0x04, 0x03, 0x30, 0x01, 0x00],
    ]
    .concat();
    let err = SigningKey::from_pem(&pem("PRIVATE KEY", &k256_pkcs8)).unwrap_err();
    assert_eq!(
        (err.clone(), err.code().as_str()),
        (KeyError::UnsupportedKeyType, "unsupported_key_type")
    );
    let k256_spki = [
        &[0x30, 0x56][..],
        k256_alg_id,
        &[0x03, 0x42, 0x00, 0x04],
        &[7u8; 64],
    ]
    .concat();
    assert_eq!(
        Jwk::from_spki_der(&k256_spki).unwrap_err(),
        KeyError::UnsupportedKeyType
    );
    assert!(matches!(
        SigningKey::from_pem(&pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00")).unwrap_err(),
        KeyError::Rejected(_)
    ));
    assert!(matches!(
        SigningKey::from_pem(&pem("RSA PRIVATE KEY", b"garbage")).unwrap_err(),
        KeyError::Rejected(_)
    ));
    assert_eq!(
        SigningKey::generate_rsa(Algorithm::ES256, 2048).unwrap_err(),
        KeyError::UnsupportedAlgorithm(Algorithm::ES256)
    );
}

/// A key of an algorithm outside the internal allowlist (P-384, P-521, the PS family) signs,
/// but verifiers refuse its tokens until their allowlist names the algorithm.
#[tokio::test]
async fn keys_outside_the_internal_algorithms_need_a_wider_allowlist() {
    for (params, alg) in [
        (
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Algorithm::ES384,
        ),
        (
            &aws_lc_rs::signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Algorithm::ES512,
        ),
    ] {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(params).unwrap();
        let key =
            SigningKey::from_pem(&pem("PRIVATE KEY", pair.to_pkcs8v1().unwrap().as_ref())).unwrap();
        assert_eq!(key.algorithm(), alg);
        assert!(!VerifierConfig::DEFAULT_ALGORITHMS.contains(alg));
        // The Router's public.pem of such a key reads back pinned to the same algorithm.
        let public = KeyRing::from_public_pem(&key.to_public_pem().unwrap()).unwrap();
        assert_eq!(public.algorithms(), AlgorithmSet::only(alg));
        let clock = ManualClock::new(NOW);
        let ring = Arc::new(KeyRing::new(key));
        let minter = TokenMinter::new(ring.clone()).with_clock(clock.clone());
        let token = minter.identity_token(&alice()).unwrap();
        let default = IdentityVerifier::new(ring.clone()).with_clock(clock.clone());
        assert_eq!(
            code(default.verify(token.as_str()).await),
            "algorithm_not_allowed"
        );
        let config = VerifierConfig::new().algorithms(VerifierConfig::DEFAULT_ALGORITHMS.with(alg));
        let wider = IdentityVerifier::with_config(ring, config)
            .unwrap()
            .with_clock(clock.clone());
        assert_eq!(wider.verify(token.as_str()).await.unwrap().algorithm(), alg);
        // A verify-only ring of the public key, as a workload manager loads it.
        let config = VerifierConfig::new().algorithms(VerifierConfig::DEFAULT_ALGORITHMS.with(alg));
        let remote = IdentityVerifier::with_config(public, config)
            .unwrap()
            .with_clock(clock);
        assert_eq!(
            remote.verify(token.as_str()).await.unwrap().algorithm(),
            alg
        );
    }
    assert_eq!(
        AlgorithmSet::only(Algorithm::EdDSA)
            .with(Algorithm::ES256)
            .with(Algorithm::RS256),
        VerifierConfig::DEFAULT_ALGORITHMS
    );
}

#[test]
fn secrets_never_appear_in_debug() {
    let pems = ed25519_pems();
    let key = SigningKey::from_pem(&pems.private).unwrap();
    let body: String = pems
        .private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pem_out = key.to_pkcs8_pem().unwrap();
    let ring = KeyRing::new(SigningKey::from_pem(&pems.private).unwrap());
    let minter = TokenMinter::new(ring);
    let token = minter.identity_token(&alice()).unwrap();
    for shown in [
        format!("{key:?}"),
        format!("{pem_out:?}"),
        format!("{:?}", minter.key_ring()),
        format!("{minter:?}"),
        format!("{token:?}"),
    ] {
        assert!(!shown.contains(&body), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains(token.as_str()), "{shown}");
        assert!(!shown.contains(&token.as_str()[..40]), "{shown}");
    }
    assert!(format!("{key:?}").contains(key.kid()));
}

#[test]
fn jwks_export_has_public_members_only() {
    let ring = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
    ring.add_verification_key(
        SigningKey::generate(Algorithm::EdDSA)
            .unwrap()
            .public_jwk()
            .clone(),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert!(key["alg"] == "ES256" || key["alg"] == "EdDSA");
        assert!(key["kid"].as_str().unwrap().len() == 43);
        assert!(key.get("d").is_none() && key.get("p").is_none());
    }
    assert_eq!(
        keys[0]["kid"],
        ring.active().unwrap().kid(),
        "the active key comes first"
    );
    assert_eq!(ring.jwks().to_json(), *ring.jwks_json());
    let back: Jwks = serde_json::from_value(doc).unwrap();
    assert_eq!(back, ring.jwks());
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() {
    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(ed25519()));
    let old_kid = ring.active().unwrap().kid().to_owned();
    let minter = TokenMinter::new(ring.clone()).with_clock(clock.clone());
    let verifier = IdentityVerifier::new(ring.clone()).with_clock(clock.clone());
    // A verifier holding a snapshot does not see later changes.
    let snapshot = IdentityVerifier::new(ring.key_set()).with_clock(clock.clone());

    let old = minter.identity_token(&alice()).unwrap();
    let generation = ring.generation();
    let new_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let new_kid = new_key.kid().to_owned();
    assert_eq!(ring.rotate(new_key).as_deref(), Some(old_kid.as_str()));
    assert!(ring.generation() > generation);
    assert_eq!(ring.kids(), vec![new_kid.clone(), old_kid.clone()]);
    assert_eq!(
        ring.algorithms(),
        AlgorithmSet::only(Algorithm::EdDSA).with(Algorithm::ES256)
    );

    let new = minter.identity_token(&alice()).unwrap();
    assert!(!new.same_token(&old), "rotation invalidates cached tokens");
    assert_eq!(verifier.verify(old.as_str()).await.unwrap().kid(), old_kid);
    assert_eq!(verifier.verify(new.as_str()).await.unwrap().kid(), new_kid);
    assert_eq!(code(snapshot.verify(new.as_str()).await), "unknown_kid");

    let err = ring.remove(&new_kid).unwrap_err();
    assert_eq!(
        (err.clone(), err.code().as_str()),
        (KeyError::ActiveKey, "active_key")
    );
    // Changes that change nothing leave the ring (and its generation) as it was.
    let (generation, len) = (ring.generation(), ring.len());
    assert!(!ring.remove("no-such-kid").unwrap());
    let active_jwk = ring.active().unwrap().public_jwk().clone();
    assert_eq!(ring.add_verification_key(active_jwk).unwrap(), new_kid);
    assert_eq!((ring.generation(), ring.len()), (generation, len));
    assert!(ring.remove(&old_kid).unwrap());
    assert_eq!(code(verifier.verify(old.as_str()).await), "unknown_kid");
    assert_eq!(verifier.verify(new.as_str()).await.unwrap().kid(), new_kid);
    assert_eq!(ring.len(), 1);
}

#[tokio::test]
async fn verification_keys_can_be_added_and_keep_a_published_kid() {
    let router = ed25519();
    let mut jwk = router.public_jwk().clone();
    jwk.kid = Some("router-2024".into());
    jwk.alg = None; // pinned to EdDSA by the ring
    let ring = KeyRing::empty();
    assert!(ring.is_empty());
    assert_eq!(ring.add_verification_key(jwk).unwrap(), "router-2024");
    assert_eq!(ring.jwks().keys[0].alg.as_deref(), Some("EdDSA"));
    assert!(ring.active().is_none());
    // A weak or non-signing key is refused.
    let mut enc = router.public_jwk().clone();
    enc.key_use = Some("enc".into());
    assert!(matches!(
        ring.add_verification_key(enc),
        Err(KeyError::Unusable(_))
    ));
    // A token whose kid is the published one verifies.
    let payload = serde_json::Value::Object(identity_claims());
    let header =
        serde_json::json!({"alg": "EdDSA", "kid": "router-2024", "typ": "agentcube-identity+jwt"});
    let pems = router.to_pkcs8_pem().unwrap();
    let block = pem::parse(pems.expose_secret()).unwrap();
    let raw = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(block.contents()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(raw.sign(input.as_bytes()))
    );
    let v = IdentityVerifier::new(ring).with_clock(ManualClock::new(NOW));
    assert_eq!(v.verify(&token).await.unwrap().kid(), "router-2024");
}

#[test]
fn a_verify_only_ring_cannot_mint() {
    let ring = KeyRing::from_public_pem(&ed25519_pems().public).unwrap();
    let minter = TokenMinter::new(ring);
    assert_eq!(
        minter.identity_token(&alice()).unwrap_err(),
        agentcube_identity::MintError::NoSigningKey
    );
    assert_eq!(
        minter.mint_sandbox(&alice(), "s").unwrap_err(),
        agentcube_identity::MintError::NoSigningKey
    );
}

#[test]
fn public_pem_export_reads_back_as_the_same_key() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        let pem = key.to_public_pem().unwrap();
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "{alg}: {pem}"
        );
        let jwk = Jwk::from_public_pem(&pem).unwrap();
        assert_eq!(jwk.thumbprint().as_deref(), Some(key.kid()), "{alg}");
        // A verify-only ring built from it checks what the signing ring mints.
        let verify_only = KeyRing::from_public_pem(&pem).unwrap();
        assert_eq!(verify_only.kids(), vec![key.kid().to_owned()]);
    }
}
