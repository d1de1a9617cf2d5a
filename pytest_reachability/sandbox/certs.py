"""Certificates for the sandbox: one CA, and leaf certificates that are good or broken on purpose.

Edges serving HTTPS need certificates a client can fail on for exactly one reason each:

* ``good``       signed by the sandbox CA, valid now, names the target host
* ``expired``    signed by the sandbox CA, names the target host, ``notAfter`` in the past
* ``wrong_host`` signed by the sandbox CA, valid now, names another host
* ``untrusted``  valid now, names the target host, signed by a CA nobody was told to trust
* ``intermediate``          signed by an intermediate CA (itself signed by the sandbox CA); the edge sends
  the leaf and the intermediate, so a client trusting only the sandbox CA verifies it
* ``missing_intermediate``  the same leaf without the intermediate: the server sends only its own
  certificate and a client trusting only the root cannot build the chain
* ``not_yet_valid`` signed by the sandbox CA, names the target host, ``notBefore`` tomorrow (issued ahead
  of time, or a server whose clock runs fast)
* ``wildcard_parent`` signed by the sandbox CA, valid now, names only ``*.`` and the target host's parent's
  parent (``*.shop.test`` for ``pay.eu.shop.test``): a wildcard covers exactly one label, so it does not match

"The target host" is the scenario's target for an edge's default certificate; :class:`EdgeIssuer` issues the
same kinds for every other host an edge serves (chosen by SNI), or one certificate naming several hosts.
The Kubernetes API server gets a ``good`` certificate for the IP address 127.0.0.1.
EC P-256 keys keep generation fast (milliseconds), which matters when tests start many sandboxes.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

TLS_KINDS = (
    "good",
    "expired",
    "wrong_host",
    "untrusted",
    "intermediate",
    "missing_intermediate",
    "not_yet_valid",
    "wildcard_parent",
)

_ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class KeyPairFiles:
    """Paths of a PEM certificate and its PEM private key."""

    cert_file: str
    key_file: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject_alt_names(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class CertificateAuthority:
    """A CA that issues leaf certificates for server names and IP addresses: self-signed, or an intermediate
    signed by ``parent``."""

    def __init__(
        self,
        common_name: str = "pytest-reachability sandbox CA",
        *,
        parent: CertificateAuthority | None = None,
    ) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._name = name
        # Where clients may fetch this CA's certificate (Authority Information Access of what it issues), as
        # public intermediates publish theirs; a self-signed root publishes none.
        self.issuer_url = "http://ca.sandbox.test/intermediate.crt" if parent else None
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(parent._name if parent else name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            # A root may sign intermediates (path length 1); an intermediate signs leaves only.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0 if parent else 1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
        )
        if parent is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent._key.public_key()), critical=False
            )
        self.certificate = builder.sign(parent._key if parent else self._key, hashes.SHA256())

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, names: list[str], *, expired: bool = False, not_yet_valid: bool = False
    ) -> tuple[bytes, bytes]:
        """Return ``(cert_pem, key_pem)`` of a server certificate for ``names`` (DNS names or IPs)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            not_before, not_after = now - 30 * _ONE_DAY, now - _ONE_DAY
        elif not_yet_valid:
            not_before, not_after = now + _ONE_DAY, now + 90 * _ONE_DAY
        else:
            not_before, not_after = now - _ONE_DAY, now + 30 * _ONE_DAY
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_subject_alt_names(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if self.issuer_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(self.issuer_url),
                        )
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        return certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def write_issued(
        self,
        directory: Path,
        stem: str,
        names: list[str],
        *,
        expired: bool = False,
        not_yet_valid: bool = False,
        chain: bytes = b"",
    ) -> KeyPairFiles:
        """Write a leaf and its key.

        ``chain`` (PEM of intermediates) follows the leaf in the certificate file."""
        cert_pem, key_pem = self.issue(names, expired=expired, not_yet_valid=not_yet_valid)
        cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_file.write_bytes(cert_pem + chain)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        return KeyPairFiles(str(cert_file), str(key_file))


class EdgeIssuer:
    """Issues an edge certificate of any TLS kind for any host, from the sandbox's authorities.

    An ingress controller serves each host the certificate its Ingress's ``spec.tls`` entry names, chosen
    by the SNI name of the handshake; the sandbox issues one such certificate per host an edge serves, of
    the edge's kind, so a fault (an expired certificate, one naming another host) holds for every host
    behind that edge."""

    def __init__(self, directory: Path, authority: CertificateAuthority) -> None:
        self.directory = directory
        self.authority = authority
        self.stranger = CertificateAuthority("pytest-reachability untrusted CA")
        self.intermediate = CertificateAuthority(
            "pytest-reachability sandbox intermediate CA", parent=authority
        )
        self._issued: dict[tuple[str, tuple[str, ...]], KeyPairFiles] = {}

    def issue(self, kind: str, *hosts: str) -> KeyPairFiles:
        """One ``kind`` certificate for ``hosts`` (all named in it; issued once, then the same files)."""
        if kind not in TLS_KINDS:
            raise ValueError(f"TLS kind must be one of {', '.join(TLS_KINDS)}, not {kind!r}")
        if not hosts:
            raise ValueError("a certificate needs at least one host")
        key = (kind, hosts)
        if key not in self._issued:
            stem = f"edge-{kind.replace('_', '-')}-{len(self._issued)}"
            self._issued[key] = self._write(kind, list(hosts), stem)
        return self._issued[key]

    def _write(self, kind: str, hosts: list[str], stem: str) -> KeyPairFiles:
        directory, authority, intermediate = self.directory, self.authority, self.intermediate
        if kind == "expired":
            return authority.write_issued(directory, stem, hosts, expired=True)
        if kind == "wrong_host":
            wrong_host = "wrong-host.invalid" if "wrong-host.invalid" not in hosts else "other-host.invalid"
            return authority.write_issued(directory, stem, [wrong_host])
        if kind == "untrusted":
            return self.stranger.write_issued(directory, stem, hosts)
        if kind == "intermediate":
            return intermediate.write_issued(directory, stem, hosts, chain=intermediate.cert_pem)
        if kind == "missing_intermediate":
            return intermediate.write_issued(directory, stem, hosts)
        if kind == "not_yet_valid":
            return authority.write_issued(directory, stem, hosts, not_yet_valid=True)
        if kind == "wildcard_parent":
            return authority.write_issued(directory, stem, sorted({_wildcard_too_high(h) for h in hosts}))
        return authority.write_issued(directory, stem, hosts)


@dataclass(frozen=True)
class SandboxCertificates:
    """Every certificate file a sandbox needs, written under one directory.

    ``edges`` holds the target host's certificate of each kind; ``issuer`` issues the same kinds for the
    other hosts an edge serves."""

    ca_file: str
    apiserver: KeyPairFiles
    edges: dict[str, KeyPairFiles]  # TLS kind -> files, for the scenario's target host
    issuer: EdgeIssuer | None = field(default=None, compare=False, repr=False)

    def for_hosts(self, kind: str, *hosts: str) -> KeyPairFiles:
        """The ``kind`` certificate naming ``hosts``, which an edge serves to a handshake naming one."""
        if self.issuer is None:
            raise ValueError("these certificates were written without an issuer for other hosts")
        return self.issuer.issue(kind, *hosts)


def _wildcard_too_high(host: str) -> str:
    """``*.`` and the parent of ``host``'s parent.

    A wildcard one level above the host, which it does not cover."""
    labels = host.split(".")
    return "*." + ".".join(labels[2:]) if len(labels) > 3 else "*.wildcard-parent.invalid"


def write_sandbox_certificates(directory: str | Path, target_host: str) -> SandboxCertificates:
    """Create the sandbox CA and the API server and edge certificates in ``directory``.

    ``ca_file`` trusts the API server and the ``good``, ``expired`` and ``wrong_host`` edges;
    the ``untrusted`` edge is signed by a second CA whose certificate is not written anywhere.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    authority = CertificateAuthority()
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(authority.cert_pem)
    issuer = EdgeIssuer(directory, authority)
    edges = {kind: issuer.issue(kind, target_host) for kind in TLS_KINDS}
    apiserver = authority.write_issued(directory, "apiserver", ["127.0.0.1", "localhost"])
    return SandboxCertificates(ca_file=str(ca_file), apiserver=apiserver, edges=edges, issuer=issuer)
