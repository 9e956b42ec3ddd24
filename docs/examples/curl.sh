#!/usr/bin/env bash
# The JSON API with curl (`drape web`, or `drape web --gateway HOST:PORT` beside `drape up`).
#   WEB=http://127.0.0.1:8080 bash docs/examples/curl.sh PHOTO
# With API keys: -H "Authorization: Bearer drape_<id>_<secret>".
set -euo pipefail
WEB=${WEB:-http://127.0.0.1:8080}
PHOTO=$1
body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '{"userId": "shopper-42", "k": 4, "previews": true, "photo": {"data": "%s"}}' \
  "$(base64 -w0 "$PHOTO")" > "$body"
# Recommend with previews: each item's preview.url is a signed link to the image.
reply=$(curl -sS --fail-with-body -H 'content-type: application/json' \
  -H 'x-request-timeout-ms: 30000' --data-binary @"$body" "$WEB/v1/recommend")
echo "$reply" | python3 -c 'import json, sys
reply = json.load(sys.stdin)
for item in reply["items"]:
    preview = item.get("preview", {})
    print(item["rank"], item["garment"]["title"], preview.get("status"), preview.get("url") or preview.get("reason"))'
url=$(echo "$reply" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(next(i["preview"]["url"] for i in r["items"] if i.get("preview",{}).get("url")))')
garment=$(echo "$reply" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["garment"]["garmentId"])')
# The first preview, 512 px WebP (what a storefront page puts in <img src>):
curl -sS --fail -o preview.webp -D - "$url&size=512&format=webp" | grep -i -E '^(HTTP|etag|cache-control|content-type)'
# A refusal: the gateway's message, as an HTTP status.
curl -sS -H 'content-type: application/json' -d '{"k": 3}' "$WEB/v1/recommend"; echo
# Track a purchase of the first garment.
curl -sS --fail-with-body -H 'content-type: application/json' "$WEB/v1/track" -d "{\"events\": [{
  \"eventId\": \"$(python3 -c 'import uuid; print(uuid.uuid4().hex)')\", \"type\": \"EVENT_TYPE_PURCHASE\",
  \"userId\": \"shopper-42\", \"garmentId\": \"$garment\"}]}"; echo
