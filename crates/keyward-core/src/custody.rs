//! Unseal shares encrypted to their custodians: each share is sealed to one
//! age X25519 public key (`age1…`), ASCII-armored, so the terminal or answer
//! that carries the set never shows a share in the clear; the custodian's
//! identity file opens theirs. The `age` crate does the cryptography.

use crate::CoreError;
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use std::io::{Read, Write};
use std::str::FromStr;
use zeroize::Zeroizing;

/// How an armored age file starts.
pub const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::ShareMalformed(why.into())
}

/// Parses recipients (`age1…`), one per share.
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, CoreError> {
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim())
                .map_err(|_| bad(format!("{:?} is not an age X25519 public key (age1…)", r.trim())))
        })
        .collect()
}

/// Encrypts one share to one recipient, ASCII-armored.
pub fn seal_share(share: &str, recipient: &age::x25519::Recipient) -> Result<String, CoreError> {
    let failed = |_| bad("encrypting a share to its custodian failed");
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient)).map_err(failed)?;
    let mut out = Vec::new();
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|_| bad("armor"))?;
    let mut w = encryptor.wrap_output(armor).map_err(|_| bad("armor"))?;
    w.write_all(share.as_bytes()).map_err(|_| bad("armor"))?;
    w.finish().and_then(|a| a.finish()).map_err(|_| bad("armor"))?;
    String::from_utf8(out).map_err(|_| bad("armor"))
}

/// True when `text` holds an armored age file (a sealed share).
pub fn is_sealed(text: &str) -> bool {
    text.trim_start().starts_with(ARMOR_BEGIN)
}

/// Opens a sealed share with the identities of an age identity file.
pub fn open_share(armored: &str, identity_file: &str) -> Result<Zeroizing<String>, CoreError> {
    let ids = age::IdentityFile::from_buffer(identity_file.as_bytes())
        .map_err(|_| bad("the identity file is not an age identity file"))?
        .into_identities()
        .map_err(|_| bad("the identity file holds no usable age identity"))?;
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(armored.trim().as_bytes()))
        .map_err(|_| bad("not an age-encrypted share"))?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|_| bad("this identity cannot open the share (it was encrypted to another custodian)"))?;
    let mut plain = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut plain).map_err(|_| bad("the encrypted share is damaged"))?;
    let text = std::str::from_utf8(&plain).map_err(|_| bad("the decrypted share is not text"))?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn a_sealed_share_opens_only_with_its_custodians_identity() {
        let (alice, bob) = (age::x25519::Identity::generate(), age::x25519::Identity::generate());
        let to = parse_recipients(&[alice.to_public().to_string()]).unwrap();
        let sealed = seal_share("kws1-abc", &to[0]).unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("kws1-abc"));
        let file = format!("# alice\n{}\n", alice.to_string().expose_secret());
        assert_eq!(open_share(&sealed, &file).unwrap().as_str(), "kws1-abc");
        let other = format!("{}\n", bob.to_string().expose_secret());
        assert!(open_share(&sealed, &other).is_err());
        assert!(parse_recipients(&["age1nope".into()]).is_err());
        assert!(open_share("not age", &file).is_err());
    }
}
