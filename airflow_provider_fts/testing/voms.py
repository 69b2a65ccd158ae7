"""The VOMS attribute-certificate extension of grid proxies: just enough DER to write and read it.

A VOMS proxy carries, in extension 1.3.6.1.4.1.8005.100.100.5, a list of RFC 3281 attribute
certificates signed by the VO's VOMS server. Each holds the VO membership as FQANs
(``/dteam/Role=NULL/Capability=NULL``) in attribute 1.3.6.1.4.1.8005.100.100.4, whose
IetfAttrSyntax value names the VO in its policy authority (``dteam://voms.host:15000``).
FTS identifies users by DN plus these FQANs, so the emulator must read them from real
proxies (``voms-proxy-init``/``voms-proxy-fake``) as well as from ours.

The tiny DER reader and writer live here to avoid a dependency on a full ASN.1 library.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ObjectIdentifier

__all__ = [
    "VOMS_EXTENSION_OID",
    "VOMS_FQAN_ATTRIBUTE_OID",
    "der",
    "der_children",
    "encode_voms_extension",
    "read_voms",
]

VOMS_EXTENSION_OID = ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
VOMS_FQAN_ATTRIBUTE_OID = ObjectIdentifier("1.3.6.1.4.1.8005.100.100.4")
_SHA256_WITH_RSA = "1.2.840.113549.1.1.11"

# DER tags used below (universal, then context-specific).
_INTEGER = 0x02
_BIT_STRING = 0x03
_OCTET_STRING = 0x04
_NULL = 0x05
_OID = 0x06
_UTF8_STRING = 0x0C
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_SET = 0x31
_CONTEXT_0 = 0xA0
_DIRECTORY_NAME = 0xA4  # GeneralName [4] (explicit, Name is a CHOICE)
_URI = 0x86  # GeneralName [6] IA5String, implicit
_ATTRIBUTES_INDEX = 6  # position of `attributes` in AttributeCertificateInfo


def der(tag: int, content: bytes) -> bytes:
    """One DER TLV (single-byte tags only, which is all X.509 needs here)."""
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def der_children(data: bytes) -> list[tuple[int, bytes]]:
    """Split concatenated DER TLVs into (tag, content) pairs; ValueError if truncated."""
    children = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("truncated DER")
        tag, length = data[offset], data[offset + 1]
        offset += 2
        if length & 0x80:
            size = length & 0x7F
            if not size or offset + size > len(data):
                raise ValueError("bad DER length")
            length = int.from_bytes(data[offset : offset + size], "big")
            offset += size
        if offset + length > len(data):
            raise ValueError("truncated DER")
        children.append((tag, data[offset : offset + length]))
        offset += length
    return children


def _sequence(*items: bytes) -> bytes:
    return der(_SEQUENCE, b"".join(items))


def _integer(value: int) -> bytes:
    return der(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(oid: ObjectIdentifier | str) -> bytes:
    dotted = oid if isinstance(oid, str) else oid.dotted_string
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    body = bytearray()
    for arc in [first * 40 + second, *rest]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return der(_OID, bytes(body))


def _time(moment: datetime) -> bytes:
    return der(_GENERALIZED_TIME, moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())


def _general_names(name: x509.Name) -> bytes:
    return _sequence(der(_DIRECTORY_NAME, name.public_bytes()))


def encode_voms_extension(
    vo: str,
    fqans: list[str],
    *,
    holder: x509.Certificate,
    signer: x509.Certificate,
    signer_key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
    serial: int = 1,
    server_uri: str = "voms.example.org:15000",
) -> bytes:
    """The DER value of the VOMS extension: one attribute certificate for ``fqans``.

    The holder is named like VOMS does (the end-entity certificate's subject and serial);
    the AC is signed by ``signer`` (the VOMS server) with SHA-256/RSA.
    """
    holder_id = _sequence(
        der(_CONTEXT_0, _general_names(holder.subject) + _integer(holder.serial_number))
    )
    issuer = der(_CONTEXT_0, _general_names(signer.subject))
    algorithm = _sequence(_oid(_SHA256_WITH_RSA), der(_NULL, b""))
    ietf_attr = _sequence(
        der(_CONTEXT_0, der(_URI, f"{vo}://{server_uri}".encode())),
        _sequence(*(der(_OCTET_STRING, fqan.encode()) for fqan in fqans)),
    )
    attributes = _sequence(_sequence(_oid(VOMS_FQAN_ATTRIBUTE_OID), der(_SET, ietf_attr)))
    info = _sequence(
        _integer(1),  # v2
        holder_id,
        issuer,
        algorithm,
        _integer(serial),
        _sequence(_time(not_before), _time(not_after)),
        attributes,
    )
    signature = signer_key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    certificate = _sequence(info, algorithm, der(_BIT_STRING, b"\x00" + signature))
    return _sequence(_sequence(certificate))


def read_voms(cert: x509.Certificate) -> tuple[str | None, list[str]]:
    """(VO, FQANs) from a certificate's VOMS extension; (None, []) when it has none.

    Raises ValueError for an extension that is not well-formed DER of the expected shape.
    """
    try:
        extension = cert.extensions.get_extension_for_oid(VOMS_EXTENSION_OID)
    except x509.ExtensionNotFound:
        return None, []
    vo: str | None = None
    fqans: list[str] = []
    try:
        for authority, values in _fqan_attributes(extension.value.value):
            fqans.extend(values)
            if vo is None and authority:
                vo = authority.partition("://")[0]
    except IndexError:
        raise ValueError("the VOMS extension is not a well-formed attribute certificate") from None
    if vo is None and fqans:
        vo = fqans[0].split("/")[1]
    return vo, fqans


def _fqan_attributes(value: bytes) -> Iterator[tuple[str | None, list[str]]]:
    """(policy authority URI, FQANs) of every FQAN attribute of every AC in the extension."""
    fqan_oid = _oid(VOMS_FQAN_ATTRIBUTE_OID)
    ((tag, ac_lists),) = der_children(value)
    if tag != _SEQUENCE:
        raise ValueError(f"expected a SEQUENCE, found tag 0x{tag:02x}")
    for ac_list in _contents(ac_lists):
        for ac in _contents(ac_list):
            info = _contents(ac)[0]
            attributes = _contents(info)[_ATTRIBUTES_INDEX]
            for attribute in _contents(attributes):
                (oid_tag, oid), (_, values) = der_children(attribute)
                if der(oid_tag, oid) != fqan_oid:
                    continue
                for _, ietf_attr in der_children(values):
                    yield _read_ietf_attr(ietf_attr)


def _read_ietf_attr(content: bytes) -> tuple[str | None, list[str]]:
    authority = None
    values: list[str] = []
    for tag, item in der_children(content):
        if tag == _CONTEXT_0:
            uris = [name for name_tag, name in der_children(item) if name_tag == _URI]
            authority = uris[0].decode() if uris else None
        elif tag == _SEQUENCE:
            values = [
                text.decode()
                for value_tag, text in der_children(item)
                if value_tag in (_OCTET_STRING, _UTF8_STRING)
            ]
    return authority, values


def _contents(data: bytes) -> list[bytes]:
    """The contents of each child TLV of a constructed value's contents."""
    return [child for _, child in der_children(data)]
