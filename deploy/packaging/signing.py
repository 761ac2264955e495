"""ed25519 signatures of an archive's index: reading the keys, signing, verifying.

What is signed is :data:`SIGNATURE_CONTEXT` followed by the index bytes; the index carries every file's
SHA-256, so a valid signature vouches for every file. The SHA-256 check alone is integrity (accidents);
only the signature is authenticity (someone who rewrites the weights can rewrite the index too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pruneofa.core.errors import InputError
from pruneofa.core.fsutil import read_bounded

SIGNATURE_CONTEXT = b"pruneofa-archive-index-v2\n"  # what is signed: this, then the index bytes
_KEY_FILE_LIMIT = 64 * 1024


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise InputError("signing needs the 'cryptography' package; pip install cryptography") from err
    return serialization


def _key_bytes(path: Path, flag: str) -> bytes:
    """The key file's bytes, read with a bound: a device (``/dev/zero``), FIFO or file over 64 KiB is
    refused before it is read whole."""
    return read_bounded(path, _KEY_FILE_LIMIT, what=flag, fix="give the key file's path")


def _not_a_key(path: Path, flag: str, kind: str, how: str) -> InputError:
    return InputError(f"{flag} {path} is not a PEM or OpenSSH {kind} key; {how}")


def _ed25519(key: Any, expected: type, path: Path, flag: str) -> Any:
    """``key`` where it is of the ``expected`` ed25519 class; any other algorithm is refused."""
    if not isinstance(key, expected):
        raise InputError(
            f"{flag} {path} is a {type(key).__name__.removeprefix('_')} key; give an ed25519 key"
        )
    return key


def load_private_key(path: Path) -> Any:
    """An ed25519 private key from a PEM (``openssl genpkey -algorithm ed25519``) or OpenSSH file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    serialization = _crypto()
    data = _key_bytes(path, "--sign")
    openssh = b"OPENSSH PRIVATE KEY" in data
    loader = serialization.load_ssh_private_key if openssh else serialization.load_pem_private_key
    try:
        key = loader(data, password=None)
    except TypeError as err:
        raise InputError(
            f"--sign {path} is encrypted; give an unencrypted ed25519 key (and keep it safe)"
        ) from err
    except (ValueError, NotImplementedError) as err:
        how = "make one with 'openssl genpkey -algorithm ed25519 -out key.pem'"
        raise _not_a_key(path, "--sign", "private", how) from err
    return _ed25519(key, Ed25519PrivateKey, path, "--sign")


def load_public_key(path: Path) -> Any:
    """An ed25519 public key from a PEM (``openssl pkey -pubout``) or OpenSSH (``ssh-ed25519 …``) file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    serialization = _crypto()
    data = _key_bytes(path, "--verify")
    openssh = data.lstrip().startswith(b"ssh-")
    loader = serialization.load_ssh_public_key if openssh else serialization.load_pem_public_key
    try:
        key = loader(data.strip())
    except (ValueError, NotImplementedError) as err:
        how = "export it with 'openssl pkey -in key.pem -pubout -out key.pub'"
        raise _not_a_key(path, "--verify", "public", how) from err
    return _ed25519(key, Ed25519PublicKey, path, "--verify")


def sign_index(private_key: Any, index: bytes) -> bytes:
    """The signature stored beside the index."""
    return private_key.sign(SIGNATURE_CONTEXT + index)


def check_signature(
    archive: Path, public_key: Any, key_path: Path, index: bytes, signature: bytes | None
) -> None:
    """Refuse an archive that is not signed, or whose signature does not verify with ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    if signature is None:
        raise InputError(
            f"{archive} is not signed, and --verify {key_path} asks for a signed archive; get a signed one "
            "(pruneofa package --sign KEY) from its author"
        )
    try:
        public_key.verify(signature, SIGNATURE_CONTEXT + index)
    except InvalidSignature:
        raise InputError(
            f"{archive}: the signature does not verify with {key_path}; the archive was changed after it was "
            "signed, or signed with another key: do not use it"
        ) from None
