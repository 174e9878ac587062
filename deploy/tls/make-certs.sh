#!/bin/sh
# A local CA and the certificates of a TLS deployment of the suite, made with openssl:
#   deploy/tls/make-certs.sh [dir]        (default: secrets/tls)
# Writes ca.pem (trust this), server.pem/.key (every service; names below), and client
# certificates master.pem/.key, linux-cli.pem/.key, probe.pem/.key (health checks, Prometheus).
# A client certificate's DNS name is the identity the services see. Existing files are kept:
# delete them to make new ones. The CA key (ca.key) signs new certificates; keep it offline.
set -eu
dir=${1:-secrets/tls}
# Names the services are reached by: loopback, compose service names, Kubernetes Service names.
names=${MCP_TLS_NAMES:-"localhost 127.0.0.1 master cmdb linux-cli secrets k8s freqtrade-knowledge ai-models"}
days=${MCP_TLS_DAYS:-397}
mkdir -p "$dir"
umask 077
cd "$dir"

if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=mcp suite local CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# issue <file> <extendedKeyUsage> <name>...
issue() {
  file=$1; usage=$2; shift 2
  [ -f "$file.pem" ] && return 0
  san=""
  for n in "$@"; do
    case $n in
      *[!0-9.]*) san="$san,DNS:$n" ;;
      *) san="$san,IP:$n" ;;
    esac
  done
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "${san#,}" "$usage" > "$file.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$file.key" -out "$file.csr" 2>/dev/null
  openssl x509 -req -in "$file.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$file.ext" -out "$file.pem" 2>/dev/null
  rm -f "$file.csr" "$file.ext"
}

# shellcheck disable=SC2086 # one argument per name
issue server serverAuth $names
issue master clientAuth master
issue linux-cli clientAuth linux-cli
issue probe clientAuth probe
chmod 0644 ca.pem ./*.pem
echo "certificates in $dir: ca.pem server.pem master.pem linux-cli.pem probe.pem (keys beside them)"
