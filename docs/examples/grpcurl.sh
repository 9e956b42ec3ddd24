#!/usr/bin/env bash
# The gateway from the shell with grpcurl, through server reflection (on by default locally;
# off in the cluster, where you pass `-import-path protos -proto drape/v1/gateway.proto`).
#   GATEWAY=127.0.0.1:50051 bash docs/examples/grpcurl.sh [PHOTO]
# With TLS: -cacert ca.pem instead of -plaintext; with API keys: -H 'authorization: Bearer ...'.
set -euo pipefail
GATEWAY=${GATEWAY:-127.0.0.1:50051}
PHOTO=${1:-}
grpcurl -plaintext "$GATEWAY" list drape.v1.GatewayService
if [ -n "$PHOTO" ]; then
  photo="\"photo\": {\"data\": \"$(base64 -w0 "$PHOTO")\"}, \"previews\": true,"
else
  photo=""
fi
grpcurl -plaintext -max-time 60 -d @ "$GATEWAY" drape.v1.GatewayService/Recommend <<JSON
{"userId": "shopper-42", "k": 3, $photo "delivery": "PREVIEW_DELIVERY_URL"}
JSON
