use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::keystore::{CHECK_FILE, MASTER_KEY_FILE};
use crate::*;
use arrow::array::{Int64Array, LargeStringArray, StringArray, StringViewArray};

const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn store() -> (tempfile::TempDir, FileKeystore) {
    let dir = tempfile::tempdir().unwrap();
    let ks = FileKeystore::open(&dir.path().join("keys"), None).unwrap();
    (dir, ks)
}

fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn round_trip() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    assert_eq!(key.version(), 1);
    for text in ["alice@example.com", "", "ünïcødé ✓", &"x".repeat(10_000)] {
        let token = key.encrypt(text);
        assert!(token.starts_with("enc:v1:"), "{token}");
        assert!(HubKey::is_token(&token));
        assert!(!token.contains(text) || text.is_empty());
        assert_eq!(key.decrypt(&token).unwrap(), text);
    }
    // A reopened keystore gives the same key.
    let again = FileKeystore::open(ks.dir(), None)
        .unwrap()
        .hub_key("main")
        .unwrap();
    assert_eq!(again.encrypt("a"), key.encrypt("a"));
}

#[test]
fn deterministic() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    assert_eq!(key.encrypt("alice"), key.encrypt("alice"));
    assert_ne!(key.encrypt("alice"), key.encrypt("bob"));
    assert_ne!(key.encrypt("alice"), key.encrypt("alice "));
}

#[test]
fn hubs_have_different_keys() {
    let (_d, ks) = store();
    let a = ks.hub_key("sales").unwrap();
    let b = ks.hub_key("hr").unwrap();
    let token = a.encrypt("alice");
    assert_ne!(token, b.encrypt("alice"));
    let err = b.decrypt(&token).unwrap_err().to_string();
    assert!(err.contains("failed authentication"), "{err}");
    // Invalid hub names never reach the file system.
    assert!(ks.hub_key("../etc").is_err());
    assert!(ks.hub_key("").is_err());
}

#[test]
fn rotation() {
    let (_d, ks) = store();
    let v1 = ks.hub_key("main").unwrap();
    let old = v1.encrypt("alice");
    let v2 = ks.rotate("main").unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(ks.hub_key("main").unwrap().version(), 2);
    let new = v2.encrypt("alice");
    assert!(new.starts_with("enc:v2:"), "{new}");
    assert_ne!(new, old);
    assert_eq!(v2.decrypt(&old).unwrap(), "alice");
    assert_eq!(v2.decrypt(&new).unwrap(), "alice");
    // A stale key cannot read the new version, and says what to do.
    let err = v1.decrypt(&new).unwrap_err().to_string();
    assert!(err.contains("version 2") && err.contains("reload"), "{err}");

    // reencrypt_array rewrites old tokens, keeps current ones and encrypts clear text.
    let input: ArrayRef = Arc::new(StringArray::from(vec![
        Some(old.as_str()),
        Some(new.as_str()),
        Some("bob"),
        None,
    ]));
    let out = v2.reencrypt_array(&input).unwrap();
    let out_values = strings(&out);
    assert_eq!(out_values[0].as_deref(), Some(new.as_str()));
    assert_eq!(out_values[1].as_deref(), Some(new.as_str()));
    assert_eq!(out_values[2], Some(v2.encrypt("bob")));
    assert_eq!(out_values[3], None);
    // Idempotent.
    assert_eq!(strings(&v2.reencrypt_array(&out).unwrap()), out_values);
    // Rotating again keeps every version.
    let v3 = ks.rotate("main").unwrap();
    assert_eq!(v3.version(), 3);
    assert_eq!(v3.decrypt(&old).unwrap(), "alice");
    assert_eq!(v3.decrypt(&new).unwrap(), "alice");
    // Rotating a hub without a key creates v1 then v2.
    assert_eq!(ks.rotate("fresh").unwrap().version(), 2);
}

#[test]
fn concurrent_creation_and_rotation_lose_no_version() {
    let (_d, ks) = store();
    let tokens: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ks.hub_key("main").unwrap().encrypt("alice")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    let mut versions: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| ks.rotate("main").unwrap().version()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    versions.sort();
    assert_eq!(versions, vec![2, 3, 4, 5]);
    let key = ks.hub_key("main").unwrap();
    assert_eq!(key.version(), 5);
    assert_eq!(key.decrypt(&tokens[0]).unwrap(), "alice");
}

#[test]
fn tampered_token_is_rejected_without_the_value() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let token = key.encrypt("secret-ssn-123");
    let mut chars: Vec<char> = token.chars().collect();
    let i = "enc:v1:".len() + 5;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let err = key.decrypt(&tampered).unwrap_err();
    assert!(matches!(err, KeyError::Key(_)));
    let msg = err.to_string();
    assert!(msg.contains("failed authentication"), "{msg}");
    assert!(
        !msg.contains(&tampered) && !msg.contains("secret-ssn"),
        "{msg}"
    );

    for bad in [
        "secret-ssn-123",
        "enc:v1:",
        "enc:v1:!!!",
        "enc:vx:AAAA",
        "enc:v01:AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(!HubKey::is_token(bad), "{bad}");
        let msg = key.decrypt(bad).unwrap_err().to_string();
        assert!(msg.contains("not an encrypted token"), "{msg}");
        assert!(!msg.contains(bad), "{msg}");
    }
    let array: ArrayRef = Arc::new(StringArray::from(vec![token.as_str(), "secret-ssn-123"]));
    let msg = key.decrypt_array(&array).unwrap_err().to_string();
    assert!(
        msg.contains("row 1") && !msg.contains("secret-ssn"),
        "{msg}"
    );
}

#[test]
fn master_key_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let hex_dir = dir.path().join("hex");
    let key = FileKeystore::open(&hex_dir, Some(HEX_KEY))
        .unwrap()
        .hub_key("main")
        .unwrap();
    assert!(!hex_dir.join(MASTER_KEY_FILE).exists());
    // The same 32 bytes in base64 open the same keystore.
    let bytes = hex::decode(HEX_KEY).unwrap();
    let b64 = STANDARD.encode(&bytes);
    let again = FileKeystore::open(&hex_dir, Some(&format!(" {b64}\n")))
        .unwrap()
        .hub_key("main")
        .unwrap();
    assert_eq!(again.encrypt("x"), key.encrypt("x"));
    // Uppercase hex works too.
    FileKeystore::open(&hex_dir, Some(&HEX_KEY.to_uppercase())).unwrap();

    for bad in [
        "",
        "short",
        &HEX_KEY[..62],
        &STANDARD.encode([1u8; 16]),
        &format!("{HEX_KEY}00"),
    ] {
        let err = FileKeystore::open(&dir.path().join("bad"), Some(bad)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KeyError::Key(_)));
        assert!(
            msg.contains("BASIN_MASTER_KEY") && msg.contains("64 hex"),
            "{msg}"
        );
        assert!(bad.is_empty() || !msg.contains(bad), "{msg}");
    }
    // Without the env key, a keystore created with one refuses to invent a new master key.
    let msg = FileKeystore::open(&hex_dir, None).unwrap_err().to_string();
    assert!(msg.contains("BASIN_MASTER_KEY"), "{msg}");
    assert!(!hex_dir.join(MASTER_KEY_FILE).exists());
}

#[test]
fn wrong_master_key_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    FileKeystore::open(&path, Some(HEX_KEY))
        .unwrap()
        .hub_key("main")
        .unwrap();
    let other = "ff".repeat(32);
    let msg = FileKeystore::open(&path, Some(&other))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("BASIN_MASTER_KEY") && msg.contains("not the master key"),
        "{msg}"
    );

    // Generated master key file replaced by another key.
    let (_d, ks) = store();
    ks.hub_key("main").unwrap();
    fs::write(ks.dir().join(MASTER_KEY_FILE), format!("{other}\n")).unwrap();
    let msg = FileKeystore::open(ks.dir(), None).unwrap_err().to_string();
    assert!(
        msg.contains("master.key") && msg.contains("not the master key"),
        "{msg}"
    );
    // Even without the check file, unwrapping hub keys fails clearly.
    fs::remove_file(ks.dir().join(CHECK_FILE)).unwrap();
    let reopened = FileKeystore::open(ks.dir(), None).unwrap();
    let msg = reopened.hub_key("main").unwrap_err().to_string();
    assert!(
        msg.contains("cannot unwrap") && msg.contains("master key"),
        "{msg}"
    );
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, ks) = store();
    ks.hub_key("main").unwrap();
    ks.rotate("main").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(ks.dir()), 0o700);
    for name in [
        MASTER_KEY_FILE,
        CHECK_FILE,
        "hub-main.json",
        "hub-main.lock",
    ] {
        assert_eq!(mode(&ks.dir().join(name)), 0o600, "{name}");
    }
    // No temporary files are left behind.
    let names: Vec<String> = fs::read_dir(ks.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    let text = fs::read_to_string(ks.dir().join("hub-main.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["current"], 2);
    assert!(file["keys"]["1"].is_string() && file["keys"]["2"].is_string());
}

#[test]
fn debug_hides_key_bytes() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let text = format!("{key:?} {ks:?}");
    assert!(text.contains("main"));
    let raw = &key.keys[&1].0;
    assert!(!text.contains(&hex::encode(raw)));
    assert!(
        !text.contains(&format!("{:?}", raw[..4].to_vec())),
        "{text}"
    );
}

#[test]
fn arrays_of_all_string_types_and_numbers() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let inputs: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some("a"), None, Some("42")])),
        Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("42")])),
        Arc::new(StringViewArray::from(vec![Some("a"), None, Some("42")])),
    ];
    let expected = vec![Some(key.encrypt("a")), None, Some(key.encrypt("42"))];
    for input in &inputs {
        let out = key.encrypt_array(input).unwrap();
        assert_eq!(out.data_type(), &DataType::Utf8);
        assert_eq!(strings(&out), expected);
        let back = key.decrypt_array(&out).unwrap();
        assert_eq!(
            strings(&back),
            vec![Some("a".to_string()), None, Some("42".to_string())]
        );
    }
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
    let out = key.encrypt_array(&numbers).unwrap();
    assert_eq!(strings(&out), vec![Some(key.encrypt("42")), None]);
}

fn people() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("email", DataType::Utf8View, true),
        Field::new("ssn", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringViewArray::from(vec![Some("a@x"), None])),
            Arc::new(Int64Array::from(vec![111, 222])),
        ],
    )
    .unwrap()
}

#[test]
fn batches_and_streams() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let columns = vec![
        "email".to_string(),
        "ssn".to_string(),
        "missing".to_string(),
    ];
    let out = key.encrypt_batch(&people(), &columns).unwrap();
    let schema = out.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert!(schema.field(1).is_nullable());
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    assert!(!schema.field(2).is_nullable());
    assert_eq!(strings(out.column(1)), vec![Some(key.encrypt("a@x")), None]);
    assert_eq!(
        strings(&key.decrypt_array(out.column(2)).unwrap()),
        vec![Some("111".to_string()), Some("222".to_string())]
    );
}

#[test]
fn encryption_never_passes_a_token_through() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let token = key.encrypt("alice");
    let input: ArrayRef = Arc::new(StringArray::from(vec![Some(token.as_str())]));
    let out = key.encrypt_array(&input).unwrap();
    let stored = strings(&out)[0].clone().unwrap();
    assert_ne!(stored, token, "a copied token must be encrypted again");
    // Decrypting what was stored gives back the token, never the clear value.
    assert_eq!(key.decrypt(&stored).unwrap(), token);
}

#[test]
fn shield_and_reveal_old_versions() {
    let (_d, ks) = store();
    let key = ks.hub_key("main").unwrap();
    let token = key.encrypt("alice");
    let other = ks.hub_key("other").unwrap().encrypt("bob");
    let input: ArrayRef = Arc::new(StringArray::from(vec![
        Some(token.as_str()),
        Some("carol"),
        Some(other.as_str()),
        None,
    ]));
    // Readers without UNMASK: tokens stay, clear text of old versions becomes its token.
    let shielded = strings(&key.shield_array(&input).unwrap());
    assert_eq!(shielded[0].as_deref(), Some(token.as_str()));
    assert_eq!(shielded[1], Some(key.encrypt("carol")));
    assert_eq!(shielded[2].as_deref(), Some(other.as_str()));
    assert_eq!(shielded[3], None);
    // Readers with UNMASK: tokens decrypted, clear text as it is.
    let old: ArrayRef = Arc::new(StringArray::from(vec![Some(token.as_str()), Some("carol")]));
    let revealed = key.reveal_array(&old).unwrap();
    assert_eq!(
        strings(&revealed),
        vec![Some("alice".into()), Some("carol".into())]
    );
}
