"""TPM 2.0 root of trust (CPython, tpm2-pytss ESAPI): keys that never leave the chip.

Everything the contract of ``device_runtime.rot`` asks for is done by the TPM
itself; this module only chooses the objects and speaks ESAPI:

* An owner-hierarchy primary storage key (ECC P-256, the TCG "SRK" template)
  persisted at ``SRK_HANDLE``. The three signing keys below are its children,
  created by the TPM (``sensitiveDataOrigin``) with ``fixedTPM | fixedParent``:
  the TPM refuses to duplicate them, so no one, the device's own software
  included, can get the private part out.
* The DeviceID key (``IDENTITY_HANDLE``): unrestricted ECC P-256 signing key for
  CSRs and, through ``identity_key().sign``, anything the device signs.
* A second unrestricted signing key (``EVIDENCE_HANDLE``, ``attestation_key()``).
  Evidence (EAT profile 1) is signed by the DeviceID key instead
  (``evidence_key()``): that is the key whose residency the factory proved.
* The attestation key for quotes (``QUOTE_HANDLE``): a *restricted* signing key,
  which signs only what the TPM itself generated (TPMS_ATTEST), never a digest
  a caller hands it. Evidence needs ``quote(nonce, registers=(0, 1))``: the
  image and configuration registers, qualified by the token's nonce.
* Measurement registers 0..7 are the SHA-256 bank's PCRs 8..15 (``PCRS``). The
  PCRs 16..23 cannot serve: 17..22 are the DRTM PCRs
  (they start at all-ones and refuse extends from locality 0, the only one an
  operating system has), and 16 is the debug PCR anyone may reset.
* Counters 0..7 are NV counter indices (TPM_NT_COUNTER) at ``COUNTER_BASE + i``,
  defined on first increment; the TPM only ever increments them, and a counter
  deleted and defined again starts at the highest value any counter ever had.
* Sealed blobs are keyed-hash data objects under the SRK whose only
  authorization is PolicyPCR over the eight PCRs, so the TPM itself refuses to
  unseal once a register changed.

The keys are persisted (TPM2_EvictControl) the first time ``open`` runs, and
found there afterwards; the DeviceID key's SRK-wrapped blob is also kept in NV
(``IDENTITY_BLOB_INDEX``) so that a TLS stack can open the key through
OpenSSL's tpm2 provider (``tls_private_key_pem``). Signing hashes on the host
(SHA-256) and asks the TPM to sign the digest (TPM2_Sign, ECDSA with SHA-256).
Every TPM failure is a ``RootOfTrustError`` with a reason; no TSS exception
escapes.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any, TypeVar

from tpm2_pytss import ESAPI  # type: ignore[import-untyped]
from tpm2_pytss.constants import (  # type: ignore[import-untyped]
    ESYS_TR,
    TPM2_ALG,
    TPM2_ECC,
    TPM2_NT,
    TPM2_RC,
    TPM2_RH,
    TPM2_SE,
    TPM2_ST,
    TPMA_NV,
    TPMA_OBJECT,
    TSS2_RC,
)
from tpm2_pytss.internal.templates import ek_template  # type: ignore[import-untyped]
from tpm2_pytss.TSS2_Exception import TSS2_Exception  # type: ignore[import-untyped]
from tpm2_pytss.types import (  # type: ignore[import-untyped]
    TPM2B_DATA,
    TPM2B_DIGEST,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_NV_PUBLIC,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_NV_PUBLIC,
    TPMS_SENSITIVE_CREATE,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMT_TK_HASHCHECK,
    TPMU_HA,
)

from device_runtime.core import der
from device_runtime.core.errors import RootOfTrustError
from device_runtime.rot import COUNTERS, MAX_SEALED, MEASUREMENT_REGISTERS, certificates

KIND = "tpm"

SRK_HANDLE = 0x81005300
"""Owner-hierarchy primary storage key (ECC P-256, TCG SRK template)."""
IDENTITY_HANDLE = 0x81005301
"""DeviceID key: unrestricted ECC P-256 signing key."""
EVIDENCE_HANDLE = 0x81005302
"""``attestation_key()``: unrestricted ECC P-256 signing key (evidence uses the DeviceID key)."""
QUOTE_HANDLE = 0x81005303
"""Attestation key for quotes: restricted ECC P-256 signing key."""
ACTIVATABLE = {"identity": IDENTITY_HANDLE, "quote": QUOTE_HANDLE}
"""The keys a credential challenge may be made for, by the name ``activate_credential`` takes."""
COUNTER_BASE = 0x01005300
"""NV index of counter 0; counter i is at ``COUNTER_BASE + i``."""
IDENTITY_BLOB_INDEX = 0x01005310
"""NV index holding the DeviceID key's loadable blob (TPM2B_PUBLIC || TPM2B_PRIVATE).

The private part of that blob is encrypted by the SRK: only this TPM can load
it, so keeping it is no export. It exists because a TLS stack (OpenSSL's tpm2
provider) opens a key from a "TSS2 PRIVATE KEY" file, which names a parent and
carries the blob, not from a persistent handle."""
_NV_CHUNK = 512
"""Bytes per TPM2_NV_Read/Write; every TPM's MAX_NV_BUFFER_SIZE is at least this."""
_TSS2_LOADABLE_KEY = "2.23.133.10.1.3"
"""The TSS2 PRIVATE KEY format's "loadable key" type."""
PCRS = tuple(range(8, 8 + MEASUREMENT_REGISTERS))
"""SHA-256 PCR behind measurement register i is ``PCRS[i]``."""

EK_CERT_INDICES = (
    ("EK-ECC256", 0x01C0000A),
    ("EK-RSA2048", 0x01C00002),
)
"""Where a TPM vendor (here swtpm_setup) stores EK certificates, in order of preference."""

SEALED_MAGIC = b"SF-TPM-SEALED-1\x00"
MAX_NONCE = 64
"""TPM2B_DATA holds at most a SHA-512 digest; longer quote nonces are refused."""
_GET_RANDOM_CHUNK = 32
MAX_RANDOM_BYTES = 1 << 16
"""The crypto ports' limit too: one call never ties the TPM up for thousands of commands."""

_SIGNING_ATTRIBUTES = (
    TPMA_OBJECT.NODA
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.SIGN_ENCRYPT
)

T = TypeVar("T")

_REASONS: dict[int, str] = {
    int(TPM2_RC.LOCKOUT): "the TPM is in dictionary-attack lockout",
    int(TPM2_RC.AUTH_FAIL): "the TPM refused the authorization",
    int(TPM2_RC.BAD_AUTH): "the TPM refused the authorization",
    int(TPM2_RC.POLICY_FAIL): "the TPM's policy check failed",
    int(TPM2_RC.INTEGRITY): "the blob was not made by this TPM or was altered",
    int(TPM2_RC.NV_SPACE): "the TPM has no NV space left",
    int(TPM2_RC.NV_RATE): "the TPM is rate-limiting NV writes",
    int(TPM2_RC.RETRY): "the TPM is busy",
    int(TPM2_RC.YIELDED): "the TPM is busy",
}


_UNREACHABLE = frozenset(
    int(code) & 0xFFFF
    for code in (TSS2_RC.BASE_RC_IO_ERROR, TSS2_RC.BASE_RC_NO_CONNECTION, TSS2_RC.BASE_RC_TRY_AGAIN)
)
"""Codes (below the layer byte) a TCTI or ESAPI returns when the TPM does not answer."""


def _reason(exc: TSS2_Exception) -> str:
    """A specific reason for a TSS error: lockout, refused auth, unreachable, or the TPM's text."""
    rc = int(exc.rc)
    if rc & 0xFF0000 and rc & 0xFFFF in _UNREACHABLE:
        return "the TPM is unreachable (" + str(exc) + ")"
    return _REASONS.get(int(exc.error), "the TPM refused: " + str(exc))


def _pcr_selection(registers: Iterable[int]) -> Any:
    chosen = sorted(set(registers))
    for index in chosen:
        _check_index(index, MEASUREMENT_REGISTERS, "measurement register")
    if not chosen:
        raise RootOfTrustError("no measurement register selected")
    return TPML_PCR_SELECTION.parse("sha256:" + ",".join(str(PCRS[i]) for i in chosen))


def _check_index(index: int, count: int, what: str) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise RootOfTrustError(f"{what} {index!r} is not in 0..{count - 1}")


def _ecc_template(*, restricted: bool) -> Any:
    attributes = _SIGNING_ATTRIBUTES | (TPMA_OBJECT.RESTRICTED if restricted else 0)
    public = TPMT_PUBLIC(type=TPM2_ALG.ECC, nameAlg=TPM2_ALG.SHA256, objectAttributes=attributes)
    public.parameters.eccDetail.symmetric.algorithm = TPM2_ALG.NULL
    public.parameters.eccDetail.scheme.scheme = TPM2_ALG.ECDSA
    public.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
    public.parameters.eccDetail.curveID = TPM2_ECC.NIST_P256
    public.parameters.eccDetail.kdf.scheme = TPM2_ALG.NULL
    return TPM2B_PUBLIC(publicArea=public)


def _srk_template() -> Any:
    attributes = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
        | TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.NODA
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.DECRYPT
    )
    public = TPMT_PUBLIC(type=TPM2_ALG.ECC, nameAlg=TPM2_ALG.SHA256, objectAttributes=attributes)
    public.parameters.eccDetail.symmetric.algorithm = TPM2_ALG.AES
    public.parameters.eccDetail.symmetric.keyBits.aes = 128
    public.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG.CFB
    public.parameters.eccDetail.scheme.scheme = TPM2_ALG.NULL
    public.parameters.eccDetail.curveID = TPM2_ECC.NIST_P256
    public.parameters.eccDetail.kdf.scheme = TPM2_ALG.NULL
    return TPM2B_PUBLIC(publicArea=public)


def _sec1_point(public: Any) -> bytes:
    """65-byte uncompressed SEC1 point of an ECC public area."""
    ecc = public.publicArea.unique.ecc
    x, y = bytes(ecc.x), bytes(ecc.y)
    return b"\x04" + x.rjust(32, b"\x00") + y.rjust(32, b"\x00")


def _raw_signature(signature: Any) -> bytes:
    ecdsa = signature.signature.ecdsa
    r, s = bytes(ecdsa.signatureR), bytes(ecdsa.signatureS)
    return r.rjust(32, b"\x00") + s.rjust(32, b"\x00")


class TpmKey:
    """A signing key resident in the TPM: the public point is known, the private part never is."""

    def __init__(self, rot: TpmRootOfTrust, handle: int, public: Any) -> None:
        self._rot = rot
        self._handle = handle
        self._public = public

    def public_key(self) -> bytes:
        """Uncompressed SEC1 point (65 bytes)."""
        return _sec1_point(self._public)

    def public_area(self) -> bytes:
        """Marshalled TPM2B_PUBLIC, so a verifier can check the key's attributes."""
        return bytes(self._public.marshal())

    def sign(self, message: bytes) -> bytes:
        """ES256 as raw r||s: SHA-256 on the host, ECDSA by the TPM over the digest."""
        digest = hashlib.sha256(message).digest()
        return self._rot._sign_digest(self._handle, digest)


class TpmRootOfTrust:
    """The contract of ``device_runtime.rot`` on a TPM 2.0, plus the TPM-only extras."""

    kind = KIND

    def __init__(self, esapi: Any) -> None:
        self._esapi = esapi
        self._lock = threading.Lock()
        self._srk: Any = None
        self._keys: dict[int, TpmKey] = {}

    @classmethod
    def open(cls, *, tcti: str) -> TpmRootOfTrust:
        """Connect to the TPM at *tcti* (e.g. ``swtpm:host=127.0.0.1,port=2321`` or
        ``device:/dev/tpmrm0``) and create the keys on first use."""
        try:
            esapi = ESAPI(tcti)
        except TSS2_Exception as exc:
            raise RootOfTrustError(_reason(exc)) from exc
        except Exception as exc:  # the TCTI loader raises plain errors for a bad string
            raise RootOfTrustError("the TPM is unreachable: " + str(exc)) from exc
        rot = cls(esapi)
        try:
            with rot._lock, rot._tpm():
                rot._srk = rot._persistent_or(SRK_HANDLE, rot._create_srk)
                for handle, restricted in (
                    (IDENTITY_HANDLE, False),
                    (EVIDENCE_HANDLE, False),
                    (QUOTE_HANDLE, True),
                ):
                    if handle == IDENTITY_HANDLE:
                        create = rot._identity_from_blob_or_new
                    else:
                        create = partial(rot._create_key, restricted)
                    tr = rot._persistent_or(handle, create)
                    public, _, _ = esapi.read_public(tr)
                    rot._keys[handle] = TpmKey(rot, tr, public)
        except BaseException:
            rot.close()
            raise
        return rot

    def close(self) -> None:
        """Drop the connection to the TPM (the keys stay in it)."""
        with suppress(TSS2_Exception):
            self._esapi.close()

    # --- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _tpm(self, what: str = "") -> Iterator[None]:
        """Turn any TSS failure into a RootOfTrustError naming what was being done."""
        try:
            yield
        except TSS2_Exception as exc:
            prefix = what + ": " if what else ""
            raise RootOfTrustError(prefix + _reason(exc)) from exc

    def _call(self, what: str, action: Callable[[], T]) -> T:
        with self._lock, self._tpm(what):
            return action()

    def _persistent_or(self, handle: int, create: Callable[[], Any]) -> Any:
        """The ESYS handle of persistent object *handle*, created and persisted if absent."""
        existing = self._existing(handle)
        if existing is not None:
            return existing
        transient = create()
        try:
            return self._esapi.evict_control(ESYS_TR.OWNER, transient, handle)
        finally:
            self._esapi.flush_context(transient)

    def _create_srk(self) -> Any:
        handle, _, _, _, _ = self._esapi.create_primary(
            TPM2B_SENSITIVE_CREATE(), _srk_template(), ESYS_TR.OWNER
        )
        return handle

    def _create_key(self, restricted: bool, *, keep_blob: bool = False) -> Any:
        private, public, _, _, _ = self._esapi.create(
            self._srk, TPM2B_SENSITIVE_CREATE(), _ecc_template(restricted=restricted)
        )
        if keep_blob:
            self._write_nv(IDENTITY_BLOB_INDEX, bytes(public.marshal()) + bytes(private.marshal()))
        return self._esapi.load(self._srk, private, public)

    def _identity_from_blob_or_new(self) -> Any:
        """The DeviceID key, loaded again from its NV blob if someone evicted it.

        Its certificate names this key, so a device whose persistent DeviceID
        went missing (TPM2_EvictControl by any owner-authorized process) must
        get the same key back, never silently a new identity; only a TPM that
        never had one creates it.
        """
        tr = self._existing(IDENTITY_BLOB_INDEX)
        if tr is None:
            return self._create_key(False, keep_blob=True)
        blob = self._read_nv(tr)
        public, offset = TPM2B_PUBLIC.unmarshal(blob)
        private, _ = TPM2B_PRIVATE.unmarshal(blob[offset:])
        return self._esapi.load(self._srk, private, public)

    def _write_nv(self, index: int, data: bytes) -> None:
        """Define ordinary NV index *index* (replacing an older one) and write *data* to it."""
        old = self._existing(index)
        if old is not None:
            self._esapi.nv_undefine_space(old, ESYS_TR.OWNER)
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=index,
                nameAlg=TPM2_ALG.SHA256,
                attributes=TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD,
                dataSize=len(data),
            )
        )
        tr = self._esapi.nv_define_space(None, public, ESYS_TR.OWNER)
        for offset in range(0, len(data), _NV_CHUNK):
            self._esapi.nv_write(tr, data[offset : offset + _NV_CHUNK], offset, ESYS_TR.OWNER)

    def _read_nv(self, tr: Any) -> bytes:
        nv_public, _ = self._esapi.nv_read_public(tr)
        size = int(nv_public.nvPublic.dataSize)
        out = bytearray()
        while len(out) < size:
            chunk = min(_NV_CHUNK, size - len(out))
            out += bytes(self._esapi.nv_read(tr, chunk, len(out), ESYS_TR.OWNER))
        return bytes(out)

    def _sign_digest(self, handle: Any, digest: bytes) -> bytes:
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
        ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
        signature = self._call(
            "signing", lambda: self._esapi.sign(handle, TPM2B_DIGEST(digest), scheme, ticket)
        )
        return _raw_signature(signature)

    # --- the contract ---------------------------------------------------------------------

    def identity_key(self) -> TpmKey:
        """The DeviceID key (unrestricted, for CSRs and what the device signs)."""
        return self._keys[IDENTITY_HANDLE]

    def attestation_key(self) -> TpmKey:
        """A second unrestricted TPM-resident signing key (not the one evidence uses)."""
        return self._keys[EVIDENCE_HANDLE]

    def evidence_key(self) -> TpmKey:
        """The DeviceID key: the one whose residency in this TPM the factory proved
        (credential activation), so a token it signs can only come from this TPM."""
        return self.identity_key()

    def certificate_chain(self, deviceid_certificate: bytes, device_id: str) -> list[bytes]:
        """Just the DeviceID certificate: it certifies the evidence key itself."""
        return [deviceid_certificate]

    def csr(self, common_name: str) -> bytes:
        """DER PKCS#10 for the DeviceID key, signed by the TPM (proof of possession)."""
        return certificates.csr(self.identity_key(), common_name)

    def extend(self, index: int, digest: bytes) -> bytes:
        """PCR_Extend of the register's SHA-256 PCR; returns the new value."""
        _check_index(index, MEASUREMENT_REGISTERS, "measurement register")
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise RootOfTrustError("a measurement is a 32-byte SHA-256 digest")
        values = TPML_DIGEST_VALUES(
            [TPMT_HA(hashAlg=TPM2_ALG.SHA256, digest=TPMU_HA(sha256=digest))]
        )
        self._call("extending", lambda: self._esapi.pcr_extend(ESYS_TR.PCR0 + PCRS[index], values))
        return self.measurement(index)

    def measurement(self, index: int) -> bytes:
        """Current value of the register's SHA-256 PCR."""
        _check_index(index, MEASUREMENT_REGISTERS, "measurement register")
        return self.measurements([index])[0]

    def measurements(self, registers: Iterable[int] = range(MEASUREMENT_REGISTERS)) -> list[bytes]:
        """Values of several registers, in ascending register order, read at once."""
        selection = _pcr_selection(registers)
        _, _, values = self._call("reading PCRs", lambda: self._esapi.pcr_read(selection))
        return [bytes(v) for v in values]

    def _existing(self, handle: int) -> Any:
        """The ESYS handle of persistent object or NV index *handle*, or None if undefined."""
        try:
            return self._esapi.tr_from_tpmpublic(handle)
        except TSS2_Exception as exc:
            if int(exc.error) == int(TPM2_RC.HANDLE):
                return None
            raise

    def _counter_index(self, index: int) -> Any:
        """The NV counter's handle (None while undefined); an index of another type at the
        same handle is refused, since its value would not be held monotonic by the TPM."""
        _check_index(index, COUNTERS, "counter")
        tr = self._existing(COUNTER_BASE + index)
        if tr is not None:
            public, _ = self._esapi.nv_read_public(tr)
            kind = (int(public.nvPublic.attributes) & int(TPMA_NV.TPM2_NT_MASK)) >> int(
                TPMA_NV.TPM2_NT_SHIFT
            )
            if kind != int(TPM2_NT.COUNTER):
                raise RootOfTrustError(f"NV index {COUNTER_BASE + index:#x} is not a counter")
        return tr

    def counter(self, index: int) -> int:
        """Value of NV counter *index* (0 until it was first incremented)."""

        def read() -> int:
            tr = self._counter_index(index)
            if tr is None:
                return 0
            try:
                data = self._esapi.nv_read(tr, 8, 0, ESYS_TR.OWNER)
            except TSS2_Exception as exc:
                if int(exc.error) == int(TPM2_RC.NV_UNINITIALIZED):
                    return 0
                raise
            return int.from_bytes(bytes(data), "big")

        return self._call("reading a counter", read)

    def increment(self, index: int) -> int:
        """TPM2_NV_Increment (the index is defined on first use); returns the new value."""

        def bump() -> None:
            tr = self._counter_index(index)
            if tr is None:
                attributes = (
                    TPMA_NV.OWNERWRITE
                    | TPMA_NV.OWNERREAD
                    | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT)
                )
                public = TPM2B_NV_PUBLIC(
                    nvPublic=TPMS_NV_PUBLIC(
                        nvIndex=COUNTER_BASE + index,
                        nameAlg=TPM2_ALG.SHA256,
                        attributes=attributes,
                        dataSize=8,
                    )
                )
                tr = self._esapi.nv_define_space(None, public, ESYS_TR.OWNER)
            self._esapi.nv_increment(tr, ESYS_TR.OWNER)

        self._call("incrementing a counter", bump)
        return self.counter(index)

    def random_bytes(self, n: int) -> bytes:
        """TPM2_GetRandom, asked as often as the TPM's per-call limit needs."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_RANDOM_BYTES:
            raise RootOfTrustError(f"random byte count must be an int in [0, {MAX_RANDOM_BYTES}]")
        out = bytearray()
        while len(out) < n:
            want = min(_GET_RANDOM_CHUNK, n - len(out))
            out += bytes(self._call("getting random bytes", partial(self._esapi.get_random, want)))
        return bytes(out[:n])

    def _pcr_policy(self, session_type: Any) -> Any:
        """A policy session (or trial) with PolicyPCR over all eight registers' PCRs."""
        session = self._esapi.start_auth_session(
            ESYS_TR.NONE, ESYS_TR.NONE, session_type, TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
            TPM2_ALG.SHA256,
        )  # fmt: skip
        try:
            self._esapi.policy_pcr(
                session, TPM2B_DIGEST(), _pcr_selection(range(MEASUREMENT_REGISTERS))
            )
        except BaseException:
            self._esapi.flush_context(session)
            raise
        return session

    def seal(self, secret: bytes) -> bytes:
        """A TPM sealed-data object whose only authorization is PolicyPCR over every register."""
        if not isinstance(secret, bytes) or len(secret) > MAX_SEALED:
            raise RootOfTrustError(f"a sealed secret is at most {MAX_SEALED} bytes")

        def create() -> bytes:
            trial = self._pcr_policy(TPM2_SE.TRIAL)
            try:
                policy = bytes(self._esapi.policy_get_digest(trial))
            finally:
                self._esapi.flush_context(trial)
            public = TPMT_PUBLIC(
                type=TPM2_ALG.KEYEDHASH,
                nameAlg=TPM2_ALG.SHA256,
                objectAttributes=TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT,
                authPolicy=policy,
            )
            public.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG.NULL
            # A TPM refuses an empty data object, so an empty secret is sealed as one byte
            # and flagged in the blob's header.
            data, flag = (secret, b"\x00") if secret else (b"\x00", b"\x01")
            sensitive = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(data=data))
            private, out_public, _, _, _ = self._esapi.create(
                self._srk, sensitive, TPM2B_PUBLIC(publicArea=public)
            )
            return SEALED_MAGIC + flag + bytes(private.marshal()) + bytes(out_public.marshal())

        return self._call("sealing", create)

    def unseal(self, blob: bytes) -> bytes:
        """The secret, only while every register holds the value it had at sealing."""
        header = len(SEALED_MAGIC) + 1
        if not isinstance(blob, bytes) or not blob.startswith(SEALED_MAGIC) or len(blob) < header:
            raise RootOfTrustError("not a blob sealed by a TPM root of trust")
        empty = blob[header - 1] == 1
        try:
            private, used = TPM2B_PRIVATE.unmarshal(blob[header:])
            public, rest = TPM2B_PUBLIC.unmarshal(blob[header + used :])
        except Exception as exc:
            raise RootOfTrustError("sealed blob is truncated or malformed") from exc
        if header + used + rest != len(blob) or blob[header - 1] > 1:
            raise RootOfTrustError("sealed blob has trailing or unknown bytes")

        def open_blob() -> bytes:
            obj = self._esapi.load(self._srk, private, public)
            try:
                session = self._pcr_policy(TPM2_SE.POLICY)
                try:
                    secret = bytes(self._esapi.unseal(obj, session1=session))
                    return b"" if empty else secret
                finally:
                    self._esapi.flush_context(session)
            finally:
                self._esapi.flush_context(obj)

        try:
            return self._call("unsealing", open_blob)
        except RootOfTrustError as exc:
            if "policy check failed" in exc.reason:
                raise RootOfTrustError("unsealing: the measurements changed since sealing") from exc
            raise

    # --- TPM-only extras ------------------------------------------------------------------

    def identity_public(self) -> bytes:
        """Marshalled TPM2B_PUBLIC of the DeviceID key."""
        return self.identity_key().public_area()

    def attestation_public(self) -> bytes:
        """Marshalled TPM2B_PUBLIC of the attestation key (``attestation_key()``)."""
        return self.attestation_key().public_area()

    def quote_public(self) -> bytes:
        """Marshalled TPM2B_PUBLIC of the restricted attestation key that signs quotes."""
        return self._keys[QUOTE_HANDLE].public_area()

    def quote(self, nonce: bytes, registers: Iterable[int] = range(8)) -> tuple[bytes, bytes]:
        """TPM2_Quote by the restricted key over the registers' PCRs, qualified by *nonce*.

        Returns the TPMS_ATTEST bytes the TPM signed and the ES256 signature (raw
        r||s over SHA-256 of them); ``attestation_server.tpm_identity.verify_quote``
        checks both. Evidence sends ``quote(nonce, registers=(0, 1))`` beside its
        token: the registers ``evidence.measure_boot`` extended, the token's nonce."""
        if not isinstance(nonce, bytes) or len(nonce) > MAX_NONCE:
            raise RootOfTrustError(f"a quote nonce is at most {MAX_NONCE} bytes")
        selection = _pcr_selection(registers)
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
        scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
        tr = self._keys[QUOTE_HANDLE]._handle
        attest, signature = self._call(
            "quoting", lambda: self._esapi.quote(tr, selection, TPM2B_DATA(nonce), scheme)
        )
        return bytes(attest), _raw_signature(signature)

    def _ek_index(self) -> tuple[str, int, Any]:
        for kind, index in EK_CERT_INDICES:
            tr = self._existing(index)
            if tr is not None:
                return kind, index, tr
        raise RootOfTrustError("the TPM holds no EK certificate")

    def tls_private_key_pem(self) -> bytes:
        """The DeviceID key as a "TSS2 PRIVATE KEY" PEM, for a TLS stack with a TPM provider.

        It names the SRK as parent and carries the key's SRK-wrapped blob: it
        opens the key inside this TPM and is useless anywhere else. OpenSSL's
        tpm2 provider reads it (``device_runtime.ports.cpython.tpm_tls``).
        """

        def read() -> tuple[bytes, bytes]:
            tr = self._existing(IDENTITY_BLOB_INDEX)
            if tr is None:
                raise RootOfTrustError("the TPM holds no loadable copy of the DeviceID key")
            blob = self._read_nv(tr)
            public, offset = TPM2B_PUBLIC.unmarshal(blob)
            private, _ = TPM2B_PRIVATE.unmarshal(blob[offset:])
            return bytes(public.marshal()), bytes(private.marshal())

        public, private = self._call("reading the DeviceID key blob", read)
        if public != self.identity_public():
            raise RootOfTrustError("the DeviceID key blob in NV is not the DeviceID key's")
        key = der.sequence(
            der.oid(_TSS2_LOADABLE_KEY),
            der.context(0, der.tlv(0x01, b"\xff")),
            der.integer(SRK_HANDLE),
            der.octet_string(public),
            der.octet_string(private),
        )
        body = base64.encodebytes(key).decode().replace("\n", "")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        pem = "-----BEGIN TSS2 PRIVATE KEY-----\n" + "\n".join(lines)
        return (pem + "\n-----END TSS2 PRIVATE KEY-----\n").encode()

    def endorsement_certificate(self) -> bytes:
        """DER EK certificate the TPM's maker stored in NV."""

        def read() -> bytes:
            _, _, tr = self._ek_index()
            return _strip_der_padding(self._read_nv(tr))

        return self._call("reading the EK certificate", read)

    def _create_ek(self) -> tuple[Any, Any]:
        kind, _, _ = self._ek_index()
        template = TPM2B_PUBLIC(publicArea=ek_template.lookup(kind).template.publicArea)
        handle, public, _, _, _ = self._esapi.create_primary(
            TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.ENDORSEMENT
        )
        return handle, public

    def endorsement_public(self) -> bytes:
        """Marshalled TPM2B_PUBLIC of the EK made from the TCG template its certificate is for."""

        def create() -> bytes:
            handle, public = self._create_ek()
            self._esapi.flush_context(handle)
            return bytes(public.marshal())

        return self._call("creating the EK", create)

    def activate_credential(
        self, credential_blob: bytes, encrypted_secret: bytes, key: str = "identity"
    ) -> bytes:
        """TPM2_ActivateCredential: the secret, only if the *key* (``identity``: the DeviceID
        key, ``quote``: the quote key) and the EK are both in this TPM (the EK authorized by
        PolicySecret(endorsement), as its template asks). The blob binds the secret to one
        key's name, so the caller says which key it was made for."""
        handle = ACTIVATABLE.get(key)
        if handle is None:
            raise RootOfTrustError("no key " + repr(key)[:40] + " to activate a credential for")
        try:
            blob, _ = TPM2B_ID_OBJECT.unmarshal(credential_blob)
            secret, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)
        except Exception as exc:
            raise RootOfTrustError("credential challenge is malformed") from exc

        def activate() -> bytes:
            ek, _ = self._create_ek()
            try:
                session = self._esapi.start_auth_session(
                    ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                    TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256,
                )  # fmt: skip
                try:
                    self._esapi.policy_secret(ESYS_TR.ENDORSEMENT, session)
                    activated = self._keys[handle]._handle
                    return bytes(
                        self._esapi.activate_credential(
                            activated, ek, blob, secret, session1=ESYS_TR.PASSWORD, session2=session
                        )
                    )
                finally:
                    self._esapi.flush_context(session)
            finally:
                self._esapi.flush_context(ek)

        return self._call("activating a credential", activate)


def _strip_der_padding(data: bytes) -> bytes:
    """An EK certificate NV index may be larger than the certificate; keep the DER element."""
    if len(data) >= 4 and data[0] == 0x30 and data[1] == 0x82:
        return data[: 4 + int.from_bytes(data[2:4], "big")]
    return data
