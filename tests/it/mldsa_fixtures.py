# ML-DSA test fixtures, made independently of ra-signer: keys and certificates by Python's
# `cryptography` (47 or newer), expanded keys by `dilithium-py` (a pure-Python FIPS 204),
# and the DER of the forms `cryptography` does not write (expanded, both, and their PBES2
# encryption) assembled here from those two.
#
# usage: python mldsa_fixtures.py OUTDIR PASSWORD
#
# Writes, for N in 44, 65, 87:
#   mldsaN-{seed,expanded,both}.pem, mldsaN-seed.der, mldsaN-{seed,expanded,both}-enc.pem,
#   mldsaN-mismatch.pem (seed of one key, expanded key of another), mldsaN-shortseed.pem,
#   mldsaN-truncated.pem (the seed-form DER cut short), mldsaN-expanded-short.pem,
#   mldsaN.pem (certificate issued by the EC CA), mldsaN-by-mldsa.pem (issued by the
#   ML-DSA-87 CA), mldsaN.sk (expanded key, hex, for deterministic reference signatures);
# and ca-ec.pem, ca-mldsa.pem, ec-leaf.pem (+ ec-leaf.key), ec-by-mldsa.pem.
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509.oid import NameOID
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

out, password = sys.argv[1], sys.argv[2].encode()
PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8


def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + body


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    body = bytes([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, body)


def seq(*parts):
    return tlv(0x30, b"".join(parts))


def pkcs8(alg_oid, private_key):
    return seq(tlv(0x02, b"\x00"), seq(oid(alg_oid)), tlv(0x04, private_key))


def pem(label, der):
    import base64

    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def pbes2(der):
    """EncryptedPrivateKeyInfo: PBES2, PBKDF2-HMAC-SHA256 (2048 rounds), AES-256-CBC."""
    salt, iv = os.urandom(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, 2048).derive(password)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(der) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    cipher = enc.update(plain) + enc.finalize()
    kdf = seq(
        oid("1.2.840.113549.1.5.12"),
        seq(tlv(0x04, salt), tlv(0x02, (2048).to_bytes(2, "big")), seq(oid("1.2.840.113549.2.9"), b"\x05\x00")),
    )
    scheme = seq(oid("2.16.840.1.101.3.4.1.42"), tlv(0x04, iv))
    return seq(seq(oid("1.2.840.113549.1.5.13"), seq(kdf, scheme)), tlv(0x04, cipher))


def write(name, data):
    mode = "w" if isinstance(data, str) else "wb"
    with open(os.path.join(out, name), mode) as f:
        f.write(data)


now = datetime.datetime.now(datetime.timezone.utc)


def certificate(cn, public_key, issuer_name, issuer_key, ca=False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    algorithm = hashes.SHA256() if isinstance(issuer_key, ec.EllipticCurvePrivateKey) else None
    return builder.sign(issuer_key, algorithm)


ec_ca_key = ec.generate_private_key(ec.SECP256R1())
ec_ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EC Test CA")])
ec_ca = certificate("EC Test CA", ec_ca_key.public_key(), ec_ca_name, ec_ca_key, ca=True)
write("ca-ec.pem", ec_ca.public_bytes(PEM).decode())

ml_ca_key = mldsa.MLDSA87PrivateKey.generate()
ml_ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ML-DSA-87 Test CA")])
ml_ca = certificate("ML-DSA-87 Test CA", ml_ca_key.public_key(), ml_ca_name, ml_ca_key, ca=True)
write("ca-mldsa.pem", ml_ca.public_bytes(PEM).decode())

ec_key = ec.generate_private_key(ec.SECP256R1())
write("ec-leaf.key", ec_key.private_bytes(PEM, PKCS8, serialization.NoEncryption()).decode())
write("ec-leaf.pem", certificate("ec leaf", ec_key.public_key(), ec_ca_name, ec_ca_key).public_bytes(PEM).decode())
write("ec-by-mldsa.pem", certificate("ec leaf by ML-DSA", ec_key.public_key(), ml_ca_name, ml_ca_key).public_bytes(PEM).decode())

params = {
    44: (mldsa.MLDSA44PrivateKey, ML_DSA_44, "2.16.840.1.101.3.4.3.17"),
    65: (mldsa.MLDSA65PrivateKey, ML_DSA_65, "2.16.840.1.101.3.4.3.18"),
    87: (mldsa.MLDSA87PrivateKey, ML_DSA_87, "2.16.840.1.101.3.4.3.19"),
}
for n, (cls, ref, alg_oid) in params.items():
    key = cls.generate()
    seed = key.private_bytes_raw()
    pk, sk = ref.key_derive(seed)
    assert pk == key.public_key().public_bytes_raw(), "dilithium-py and cryptography agree"
    # Round trip through cryptography's own loader: its seed form is what we parse.
    seed_der = key.private_bytes(DER, PKCS8, serialization.NoEncryption())
    assert seed_der == pkcs8(alg_oid, tlv(0x80, seed)), "cryptography writes the seed form"
    expanded_der = pkcs8(alg_oid, tlv(0x04, sk))
    both_der = pkcs8(alg_oid, seq(tlv(0x04, seed), tlv(0x04, sk)))
    p = f"mldsa{n}"
    write(f"{p}-seed.pem", key.private_bytes(PEM, PKCS8, serialization.NoEncryption()).decode())
    write(f"{p}-seed.der", seed_der)
    write(f"{p}-expanded.pem", pem("PRIVATE KEY", expanded_der))
    write(f"{p}-both.pem", pem("PRIVATE KEY", both_der))
    write(f"{p}-seed-enc.pem", key.private_bytes(PEM, PKCS8, serialization.BestAvailableEncryption(password)).decode())
    write(f"{p}-expanded-enc.pem", pem("ENCRYPTED PRIVATE KEY", pbes2(expanded_der)))
    write(f"{p}-both-enc.pem", pem("ENCRYPTED PRIVATE KEY", pbes2(both_der)))
    _, other_sk = ref.key_derive(os.urandom(32))
    write(f"{p}-mismatch.pem", pem("PRIVATE KEY", pkcs8(alg_oid, seq(tlv(0x04, seed), tlv(0x04, other_sk)))))
    write(f"{p}-shortseed.pem", pem("PRIVATE KEY", pkcs8(alg_oid, tlv(0x80, seed[:31]))))
    write(f"{p}-truncated.pem", pem("PRIVATE KEY", seed_der[:-7]))
    write(f"{p}-expanded-short.pem", pem("PRIVATE KEY", pkcs8(alg_oid, tlv(0x04, sk[:-64]))))
    write(f"{p}.pem", certificate(f"ML-DSA-{n} leaf", key.public_key(), ec_ca_name, ec_ca_key).public_bytes(PEM).decode())
    write(f"{p}-by-mldsa.pem", certificate(f"ML-DSA-{n} leaf by ML-DSA", key.public_key(), ml_ca_name, ml_ca_key).public_bytes(PEM).decode())
    write(f"{p}.sk", sk.hex())
print("ok")
