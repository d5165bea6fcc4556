# Shared by the benchmarks (source it): a throwaway PKI and a running ra-emulator (these need
# $work, a temp dir, and $bin, the release binaries' directory), and the TPM command counter.

bench_ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/bench
bench_pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/bench
bench_ro=arn:aws:iam::123456789012:role/bench

# A root CA ($work/ca.pem) and two leaves, $work/{rsa,p256}.{key,pem}.
bench_pki() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 2 \
    -subj "/CN=Bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
  local kind
  for kind in rsa p256; do
    case $kind in
      rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$kind.key" 2>/dev/null ;;
      p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$kind.key" 2>/dev/null ;;
    esac
    openssl req -new -key "$work/$kind.key" -subj "/CN=bench-$kind" -out "$work/$kind.csr"
    openssl x509 -req -in "$work/$kind.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
      -set_serial 0x$(openssl rand -hex 8) -days 1 -sha256 -out "$work/$kind.pem" 2>/dev/null
  done
}

# Starts ra-emulator trusting $work/ca.pem for $1 seconds at most: sets $emu (its pid) and
# $url; its TLS CA is $work/tls.pem.
bench_emulator() {
  "$bin/ra-emulator" --trust-anchor-ca "$work/ca.pem" --trust-anchor-arn $bench_ta \
    --profile-arn $bench_pr --role-arn $bench_ro --ready-file "$work/ready" \
    --tls-ca-out "$work/tls.pem" --log /dev/null --exit-after "$1" >/dev/null & emu=$!
  for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
  url=$(cat "$work/ready")
}

# Reads a slice of a swtpm command log (level 20) on stdin and prints "N commands (NAMES)",
# the TPM_RC_RETRY answers that libtss2 resends counted apart.
tpm_command_count() {
    awk '
        BEGIN { names["00000131"] = "CreatePrimary"; names["00000157"] = "Load";
                names["0000015D"] = "Sign"; names["00000165"] = "FlushContext";
                names["00000173"] = "ReadPublic" }
        /SWTPM_IO_Read:/ { getline; cc = $7 $8 $9 $10; next }
        /SWTPM_IO_Write:/ {
            getline; rc = $7 $8 $9 $10
            name = (cc in names) ? names[cc] : "0x" cc
            if (rc == "00000922") { retried++ } else { n++; list = list (list ? ", " : "") name }
        }
        END {
            extra = retried ? sprintf(", plus %d answered TPM_RC_RETRY", retried) : ""
            printf "%d commands (%s)%s\n", n, list, extra
        }'
}
