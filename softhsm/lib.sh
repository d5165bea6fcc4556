# Shell functions for private SoftHSM2 tokens and a throwaway CA. Source it:
#
#   . softhsm/lib.sh
#   sh_init /tmp/demo            # own softhsm2.conf + token dir; exports SOFTHSM2_CONF
#   sh_token demo 1234 5678      # a token labelled "demo", user PIN 1234, SO PIN 5678
#   sh_genkey demo 1234 leaf 01 p256          # key pair generated inside the token
#   ca_init /tmp/demo/ca                      # root + intermediate CA (files)
#   sh_pubkey demo 1234 leaf /tmp/demo/leaf.pub.pem
#   ca_issue /tmp/demo/ca /tmp/demo/leaf.pub.pem "CN=leaf" /tmp/demo/leaf.pem
#   sh_import_cert demo 1234 leaf 01 /tmp/demo/leaf.pem
#
# Nothing here touches the system's SoftHSM2 token directory: every token lives in the
# directory given to sh_init.

SH_MODULE=${SH_MODULE:-}

# Installs SoftHSM2, OpenSC (pkcs11-tool, pkcs11-spy), GnuTLS's p11tool and p11-kit when
# any is missing (Debian/Ubuntu).
sh_require_tools() {
    local missing=""
    for t in softhsm2-util pkcs11-tool p11tool openssl; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    if [ -n "$missing" ]; then
        echo "softhsm/lib.sh: installing SoftHSM2 and OpenSC (missing:$missing)" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update >&2 &&
            $sudo apt-get install -y --no-install-recommends softhsm2 opensc gnutls-bin p11-kit openssl >&2 ||
            { echo "softhsm/lib.sh: could not install the tools" >&2; return 1; }
    fi
    if [ -z "$SH_MODULE" ]; then
        for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
            /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
            if [ -f "$m" ]; then SH_MODULE=$m; break; fi
        done
    fi
    [ -n "$SH_MODULE" ] || { echo "softhsm/lib.sh: libsofthsm2.so not found" >&2; return 1; }
    export SH_MODULE
}

# sh_init DIR: a private SoftHSM2 configuration in DIR (DIR/softhsm2.conf, DIR/tokens).
sh_init() {
    local dir=$1
    sh_require_tools || return 1
    mkdir -p "$dir/tokens"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/softhsm2.conf" <<EOF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
    export SOFTHSM2_CONF=$dir/softhsm2.conf
}

# sh_token LABEL PIN SO_PIN: initializes a new token in the free slot.
sh_token() {
    softhsm2-util --init-token --free --label "$1" --pin "$2" --so-pin "$3" >/dev/null
}

# sh_token_serial LABEL: the serial of the (first) token with that label.
sh_token_serial() {
    softhsm2-util --show-slots | awk -v want="$1" '
        /Serial number:/ { serial = $3 }
        /Label:/ { sub(/^[ \t]*Label:[ \t]*/, ""); sub(/[ \t]+$/, ""); if ($0 == want && serial != "") { print serial; exit } }'
}

# sh_move_to_slot0 LABEL: gives the token slot id 0. SoftHSM2 derives a token's slot id from
# the last 8 hex digits of its serial (masked to 31 bits), so a serial ending in 80000000 puts
# it in slot 0; the serial is rewritten in the token's metadata file.
sh_move_to_slot0() {
    local serial new f
    serial=$(sh_token_serial "$1")
    [ -n "$serial" ] || { echo "no token $1" >&2; return 1; }
    new="${serial:0:8}80000000"
    f=$(grep -l "$serial" "$(dirname "$SOFTHSM2_CONF")"/tokens/*/token.object) || return 1
    python3 - "$f" "$serial" "$new" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = open(path, "rb").read()
assert data.count(old) == 1, "serial not found exactly once"
open(path, "wb").write(data.replace(old, new))
EOF
}

_sh_tool() {
    pkcs11-tool --module "$SH_MODULE" "$@"
}

# sh_genkey TOKEN PIN LABEL ID TYPE [--always-auth]: a key pair generated inside the token
# (sensitive, never extractable). TYPE: rsa2048 rsa3072 p256 p384.
sh_genkey() {
    local token=$1 pin=$2 label=$3 id=$4 type=$5
    shift 5
    local kt
    case $type in
    rsa2048) kt=rsa:2048 ;;
    rsa3072) kt=rsa:3072 ;;
    p256) kt=EC:prime256v1 ;;
    p384) kt=EC:secp384r1 ;;
    *) echo "unknown key type $type" >&2; return 1 ;;
    esac
    _sh_tool --token-label "$token" --login --pin "$pin" --keypairgen --key-type "$kt" \
        --label "$label" --id "$id" --usage-sign --sensitive "$@" >/dev/null
}

# sh_pubkey TOKEN PIN LABEL OUT.pem: exports the public key (PEM SPKI) of a key pair
# (p11tool can, for P-384 too; pkcs11-tool cannot).
sh_pubkey() {
    GNUTLS_PIN=$2 p11tool --provider "$SH_MODULE" --login --export-pubkey \
        "pkcs11:token=$1;object=$3;type=private" --outfile "$4" 2>/dev/null
}

# sh_import_cert TOKEN PIN LABEL ID CERT.pem: stores a certificate (ID may be "" for none).
sh_import_cert() {
    local der
    der=$(mktemp)
    openssl x509 -in "$5" -outform DER -out "$der"
    if [ -n "$4" ]; then
        _sh_tool --token-label "$1" --login --pin "$2" --write-object "$der" --type cert \
            --label "$3" --id "$4" >/dev/null
    else
        _sh_tool --token-label "$1" --login --pin "$2" --write-object "$der" --type cert \
            --label "$3" >/dev/null
    fi
    local rc=$?
    rm -f "$der"
    return $rc
}

# sh_import_key TOKEN PIN LABEL ID KEY.pem: imports a private key made outside the token (no
# public key object is written: the certificate with the same ID pairs with it).
sh_import_key() {
    local der
    der=$(mktemp)
    openssl pkey -in "$5" -outform DER -out "$der"
    _sh_tool --token-label "$1" --login --pin "$2" --write-object "$der" --type privkey \
        --label "$3" --id "$4" --usage-sign --sensitive >/dev/null
    local rc=$?
    rm -f "$der"
    return $rc
}

# ca_init DIR [NAME]: a throwaway root CA (DIR/root.pem, root.key) and an intermediate
# (DIR/int.pem, int.key), P-256, valid 10 years.
ca_init() {
    local dir=$1 name=${2:-ra-signer test}
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/root.key" -out "$dir/root.pem" -days 3650 -subj "/O=$name/CN=$name root CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/int.key" -out "$dir/int.csr" -subj "/O=$name/CN=$name intermediate CA" 2>/dev/null || return 1
    cat >"$dir/int.ext" <<EOF
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in "$dir/int.csr" -CA "$dir/root.pem" -CAkey "$dir/root.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$dir/int.ext" \
        -out "$dir/int.pem" 2>/dev/null || return 1
    cat >"$dir/leaf.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
}

# ca_issue DIR PUB.pem SUBJECT OUT.pem [root|int]: a leaf certificate for a public key
# (no CSR needed: the key stays in the token). SUBJECT in OpenSSL form, "/CN=leaf".
ca_issue() {
    local dir=$1 pub=$2 subj=$3 out=$4 issuer=${5:-int}
    openssl x509 -new -force_pubkey "$pub" -subj "$subj" -CA "$dir/$issuer.pem" \
        -CAkey "$dir/$issuer.key" -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 \
        -extfile "$dir/leaf.ext" -out "$out" 2>/dev/null
}

# ca_sign_csr DIR CSR.pem OUT.pem [root|int]: a leaf certificate for a CSR.
ca_sign_csr() {
    local dir=$1 csr=$2 out=$3 issuer=${4:-int}
    openssl x509 -req -in "$csr" -CA "$dir/$issuer.pem" -CAkey "$dir/$issuer.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 -extfile "$dir/leaf.ext" \
        -out "$out" 2>/dev/null
}

# sh_key_with_cert TOKEN PIN LABEL ID TYPE CADIR OUTDIR [extra sh_genkey flags]: a key pair
# generated in the token, a certificate for it from the intermediate CA, stored beside it and
# written to OUTDIR/LABEL.pem.
sh_key_with_cert() {
    local token=$1 pin=$2 label=$3 id=$4 type=$5 ca=$6 out=$7
    shift 7
    sh_genkey "$token" "$pin" "$label" "$id" "$type" "$@" || return 1
    sh_pubkey "$token" "$pin" "$label" "$out/$label.pub.pem" || return 1
    ca_issue "$ca" "$out/$label.pub.pem" "/O=ra-signer test/CN=$label" "$out/$label.pem" || return 1
    sh_import_cert "$token" "$pin" "$label" "$id" "$out/$label.pem"
}
