# Shell functions for private swtpm (TPM 2.0 simulator) instances with keys and
# certificates. Source it:
#
#   . softhsm/swtpm-lib.sh
#   tpm_start /tmp/tpm1 600        # swtpm on free loopback ports, own state dir, stops
#                                  # by itself after 600 s; exports TPM2TOOLS_TCTI etc.
#   tpm_provision /tmp/tpm1/fixtures   # CA, keys (tpm2-openssl and tpm2-tools), certs
#   tpm_stop /tmp/tpm1
#   tpm_start --unix /tmp/tpm2 600 # swtpm on the UNIX socket /tmp/tpm2/tpm.sock instead;
#                                  # exports TPM_DEVICE (what the Go helper's tests use)
#
# Over TCP, swtpm listens on 127.0.0.1; the TCTI string is swtpm:host=127.0.0.1,port=PORT
# (the control port is PORT+1). Over a UNIX socket, only ra-signer (TPM_DEVICE=SOCKET or
# --tpm-tcti device:SOCKET) and the Go helper reach it: Debian's tpm2-tss 3.2, and with it
# tpm2-tools and tpm2-openssl, has no TCTI for a socket. Provision over TCP, then start the
# same state on a socket (tpm_stop keeps DIR/state).

_tpm_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Installs swtpm, tpm2-tools, tpm2-openssl and libtss2 when any is missing (Debian/Ubuntu).
tpm_require_tools() {
    local missing=""
    for t in swtpm tpm2_createprimary openssl; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    # The tpm2-openssl provider module.
    if ! compgen -G "/usr/lib/*/ossl-modules/tpm2.so" >/dev/null &&
        ! compgen -G "/usr/lib*/ossl-modules/tpm2.so" >/dev/null; then
        missing="$missing tpm2-openssl"
    fi
    if [ -n "$missing" ]; then
        echo "swtpm-lib: installing swtpm, tpm2-tools, tpm2-openssl (missing:$missing)" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update >&2 &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                swtpm swtpm-tools tpm2-tools tpm2-openssl libtss2-dev pkg-config openssl >&2 ||
            { echo "swtpm-lib: could not install the tools" >&2; return 1; }
    fi
}

# _tpm_port_free PORT: true when nothing listens on 127.0.0.1:PORT.
_tpm_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _tpm_spawn_tcp DIR PORT LIFETIME [LOG_ARGS...]: starts swtpm in the background (its pid in
# $!) on loopback PORT (commands) and PORT+1 (control), with its state in DIR/state.
_tpm_spawn_tcp() {
    local dir=$1 port=$2 lifetime=$3
    shift 3
    timeout --signal=TERM "$lifetime" swtpm socket --tpm2 \
        --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
        --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
        --tpmstate "dir=$dir/state" --flags not-need-init,startup-clear \
        --pid "file=$dir/swtpm.pid" "$@" </dev/null >>"$dir/swtpm.out" 2>&1 &
}

# tpm_start [--unix] DIR [LIFETIME_SECONDS] [LOG_LEVEL]: starts swtpm with its state in
# DIR/state on free loopback ports. It stops by itself after LIFETIME seconds (default
# 3600). Writes DIR/env (source it) and exports TPM2TOOLS_TCTI, TPM2OPENSSL_TCTI, SWTPM_PORT,
# SWTPM_PID. With --unix it listens on the UNIX socket DIR/tpm.sock (mode 0600) instead and
# exports TPM_DEVICE, SWTPM_SOCKET, SWTPM_PID. LOG_LEVEL 20 logs every command to
# DIR/swtpm.log (used to count TPM commands).
tpm_start() {
    local unix=
    if [ "${1:-}" = --unix ]; then unix=1; shift; fi
    local dir=$1 lifetime=${2:-3600} level=${3:-}
    tpm_require_tools || return 1
    mkdir -p "$dir/state"
    dir=$(cd "$dir" && pwd)
    local log=()
    if [ -n "$level" ]; then log=(--log "file=$dir/swtpm.log,level=$level"); fi
    if [ -n "$unix" ]; then
        _tpm_start_unix "$dir" "$lifetime" "${log[@]}"
        return
    fi
    local attempt port
    for attempt in 1 2 3 4 5 6 7 8; do
        # Below Linux's ephemeral range (32768+), where outgoing connections take ports.
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        _tpm_port_free "$port" && _tpm_port_free $((port + 1)) || continue
        rm -f "$dir/swtpm.pid"
        _tpm_spawn_tcp "$dir" "$port" "$lifetime" "${log[@]}"
        local i
        for i in $(seq 1 250); do
            # Listening, and still alive a moment later (a swtpm that lost a race for the
            # ports exits at once; the listener would then be someone else's).
            if [ -s "$dir/swtpm.pid" ] && ! _tpm_port_free $((port + 1)) && sleep 0.1 &&
                kill -0 $! 2>/dev/null && kill -0 "$(cat "$dir/swtpm.pid")" 2>/dev/null; then
                cat >"$dir/env" <<EOF
export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$port
export TPM2OPENSSL_TCTI=swtpm:host=127.0.0.1,port=$port
export SWTPM_PORT=$port
export SWTPM_PID=$(cat "$dir/swtpm.pid")
EOF
                # shellcheck disable=SC1091
                . "$dir/env"
                return 0
            fi
            kill -0 $! 2>/dev/null || break
            sleep 0.02
        done
        kill $! 2>/dev/null || true
    done
    echo "swtpm-lib: could not start swtpm (see $dir/swtpm.out)" >&2
    return 1
}

# _tpm_start_unix DIR LIFETIME [LOG_ARGS...]: tpm_start --unix.
_tpm_start_unix() {
    local dir=$1 lifetime=$2
    shift 2
    local sock=$dir/tpm.sock
    rm -f "$dir/swtpm.pid" "$sock"
    # The same flags as the Go helper's TPM test set-up: no TPM2_Startup needed.
    timeout --signal=TERM "$lifetime" swtpm socket --tpm2 \
        --server "type=unixio,path=$sock,mode=0600" \
        --tpmstate "dir=$dir/state" --flags not-need-init,startup-clear \
        --pid "file=$dir/swtpm.pid" "$@" </dev/null >>"$dir/swtpm.out" 2>&1 &
    local i
    for i in $(seq 1 250); do
        # Probing by connecting would take swtpm's only client slot: wait for the socket
        # file and a live process instead.
        if [ -S "$sock" ] && [ -s "$dir/swtpm.pid" ] && kill -0 "$(cat "$dir/swtpm.pid")" 2>/dev/null; then
            cat >"$dir/env" <<EOF
export TPM_DEVICE=$sock
export SWTPM_SOCKET=$sock
export SWTPM_PID=$(cat "$dir/swtpm.pid")
EOF
            # shellcheck disable=SC1091
            . "$dir/env"
            return 0
        fi
        kill -0 $! 2>/dev/null || break
        sleep 0.02
    done
    kill $! 2>/dev/null || true
    echo "swtpm-lib: could not start swtpm on $sock (see $dir/swtpm.out)" >&2
    return 1
}

# tpm_stop DIR: stops the swtpm started in DIR (its state stays in DIR/state).
tpm_stop() {
    local pid
    pid=$(cat "$1/swtpm.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    local i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    rm -f "$1/swtpm.pid"
}

# _tpm_clean: flushes what tpm2-tools leave behind without a resource manager (transient
# objects, loaded and saved sessions), or swtpm runs out of slots (0x902, 0x903).
_tpm_clean() {
    tpm2_flushcontext -t 2>/dev/null
    tpm2_flushcontext -l 2>/dev/null
    tpm2_flushcontext -s 2>/dev/null
    return 0
}

# tpm_pubkey KEY OUT.pem: the public key of a TSS2 key file or of handle:0x81…, as PEM SPKI
# (tpm2-openssl asks for the key password of a key without emptyAuth even for that: a
# placeholder answers, as the public part needs none).
tpm_pubkey() {
    case $1 in
    handle:*) tpm2_readpublic -Q -c "${1#handle:}" -f pem -o "$2" && _tpm_clean ;;
    *) openssl pkey -provider tpm2 -provider base -in "$1" -passin pass:unused -pubout \
        -out "$2" 2>/dev/null ;;
    esac
}

# tpm_srk HANDLE [PASSWORD]: the standard ECC P-256 storage primary (the template
# tpm2-openssl uses under a hierarchy) made persistent at HANDLE.
tpm_srk() {
    local ctx
    ctx=$(mktemp)
    local pw=()
    if [ -n "${2:-}" ]; then pw=(-p "$2"); fi
    tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb "${pw[@]}" \
        -a "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda" \
        -c "$ctx" &&
        tpm2_evictcontrol -Q -C o -c "$ctx" "$1"
    local rc=$?
    _tpm_clean
    rm -f "$ctx"
    return $rc
}

# _tpm_alg TYPE: the tpm2-tools algorithm name of rsa2048, p256 or p384.
_tpm_alg() {
    case $1 in
    rsa2048) echo rsa2048 ;;
    p256) echo ecc256 ;;
    p384) echo ecc384 ;;
    *) echo "unknown key type $1" >&2; return 1 ;;
    esac
}

# tpm_tools_key PARENT TYPE OUT.key [KEY_PASSWORD] [PARENT_PASSWORD] [ATTRIBUTES]: a key
# created with tpm2_create under a persistent PARENT and written as a TSS2 key file with
# tpm2_encodeobject (its public key to OUT.pub.pem). TYPE: rsa2048 p256 p384. tpm2_encodeobject 5.4 writes emptyAuth
# inverted: FALSE for a key without password, TRUE (with -p) for one with.
tpm_tools_key() {
    local parent=$1 type=$2 out=$3 pw=${4:-} ppw=${5:-}
    local attrs=${6:-"fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign"}
    local alg
    alg=$(_tpm_alg "$type") || return 1
    local tmp
    tmp=$(mktemp -d)
    local kp=() pp=() flag=()
    if [ -n "$pw" ]; then kp=(-p "$pw"); flag=(-p); fi
    if [ -n "$ppw" ]; then pp=(-P "$ppw"); fi
    tpm2_create -Q -C "$parent" "${pp[@]}" -G "$alg" -g sha256 "${kp[@]}" -a "$attrs" \
        -u "$tmp/k.pub" -r "$tmp/k.priv" &&
        tpm2_encodeobject -Q -C "$parent" "${pp[@]}" -u "$tmp/k.pub" -r "$tmp/k.priv" \
            "${flag[@]}" -o "$out" &&
        tpm2_print -t TPM2B_PUBLIC -f pem "$tmp/k.pub" >"${out%.key}.pub.pem"
    local rc=$?
    _tpm_clean
    rm -rf "$tmp"
    return $rc
}

# tpm_persistent_key HANDLE TYPE [KEY_PASSWORD]: a key under the SRK at 0x81000001, made
# persistent at HANDLE with tpm2_evictcontrol.
tpm_persistent_key() {
    local handle=$1 type=$2 pw=${3:-}
    local tmp
    tmp=$(mktemp -d)
    local alg
    alg=$(_tpm_alg "$type") || return 1
    local kp=()
    if [ -n "$pw" ]; then kp=(-p "$pw"); fi
    tpm2_create -Q -C 0x81000001 -G "$alg" -g sha256 "${kp[@]}" \
        -a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign" \
        -u "$tmp/k.pub" -r "$tmp/k.priv" &&
        tpm2_load -Q -C 0x81000001 -u "$tmp/k.pub" -r "$tmp/k.priv" -c "$tmp/k.ctx" &&
        tpm2_evictcontrol -Q -C o -c "$tmp/k.ctx" "$handle"
    local rc=$?
    _tpm_clean
    rm -rf "$tmp"
    return $rc
}

# tpm_cert CA_DIR KEY NAME OUT_DIR: a leaf certificate for KEY (file or handle:…) from the
# intermediate CA, written to OUT_DIR/NAME.pem (the public key from OUT_DIR/NAME.pub.pem
# when it exists, else read through the TPM).
tpm_cert() {
    local ca=$1 key=$2 name=$3 out=$4
    { [ -s "$out/$name.pub.pem" ] || tpm_pubkey "$key" "$out/$name.pub.pem"; } &&
        ca_issue "$ca" "$out/$name.pub.pem" "/O=ra-signer test/CN=$name" "$out/$name.pem"
}

# tpm_provision OUT_DIR: a throwaway CA (OUT_DIR/ca: root.pem, int.pem) and, in the
# running swtpm, these keys, each with a certificate OUT_DIR/NAME.pem:
#   ossl-p256 ossl-p384 ossl-rsa   tpm2-openssl keys under the owner hierarchy (.key)
#   ossl-p256-pw                   the same with key password "osslpw"
#   tools-p256 tools-p384 tools-rsa  tpm2-tools keys under the SRK at 0x81000001 (.key)
#   tools-p256-pw                  the same with key password "toolspw"
#   srkpw-p256                     under a second SRK at 0x81000002 with password "srkpw"
#   decrypt-rsa                    an RSA key without the sign attribute (.key)
#   handle-p256 handle-p384        persistent keys at 0x81000101 and 0x81000103
#   handle-rsa-pw                  persistent RSA key at 0x81000102, password "handlepw"
tpm_provision() {
    local out=$1
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    # shellcheck disable=SC1091
    . "$_tpm_here/lib.sh"
    ca_init "$out/ca" "ra-signer tpm test" || return 1
    local gen=(openssl genpkey -provider tpm2 -provider base)
    "${gen[@]}" -algorithm EC -pkeyopt group:P-256 -out "$out/ossl-p256.key" 2>/dev/null &&
        "${gen[@]}" -algorithm EC -pkeyopt group:P-384 -out "$out/ossl-p384.key" 2>/dev/null &&
        "${gen[@]}" -algorithm RSA -pkeyopt bits:2048 -out "$out/ossl-rsa.key" 2>/dev/null &&
        "${gen[@]}" -algorithm EC -pkeyopt group:P-256 -pkeyopt user-auth:osslpw \
            -out "$out/ossl-p256-pw.key" 2>/dev/null || { echo "tpm_provision: openssl genpkey failed" >&2; return 1; }
    tpm_srk 0x81000001 && tpm_srk 0x81000002 srkpw || return 1
    tpm_tools_key 0x81000001 p256 "$out/tools-p256.key" &&
        tpm_tools_key 0x81000001 p384 "$out/tools-p384.key" &&
        tpm_tools_key 0x81000001 rsa2048 "$out/tools-rsa.key" &&
        tpm_tools_key 0x81000001 p256 "$out/tools-p256-pw.key" toolspw &&
        tpm_tools_key 0x81000002 p256 "$out/srkpw-p256.key" "" srkpw &&
        tpm_tools_key 0x81000001 rsa2048 "$out/decrypt-rsa.key" "" "" \
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|decrypt" || return 1
    tpm_persistent_key 0x81000101 p256 && tpm_persistent_key 0x81000103 p384 &&
        tpm_persistent_key 0x81000102 rsa2048 handlepw || return 1
    local k
    for k in ossl-p256 ossl-p384 ossl-rsa tools-p256 tools-p384 tools-rsa decrypt-rsa; do
        tpm_cert "$out/ca" "$out/$k.key" "$k" "$out" || { echo "tpm_provision: no certificate for $k" >&2; return 1; }
    done
    TPM2OPENSSL_PARENT_AUTH=srkpw tpm_cert "$out/ca" "$out/srkpw-p256.key" srkpw-p256 "$out" &&
        tpm_cert "$out/ca" "$out/ossl-p256-pw.key" ossl-p256-pw "$out" &&
        tpm_cert "$out/ca" "$out/tools-p256-pw.key" tools-p256-pw "$out" &&
        tpm_cert "$out/ca" handle:0x81000101 handle-p256 "$out" &&
        tpm_cert "$out/ca" handle:0x81000103 handle-p384 "$out" &&
        tpm_cert "$out/ca" handle:0x81000102 handle-rsa-pw "$out" ||
        { echo "tpm_provision: a certificate could not be made" >&2; return 1; }
}
