#!/usr/bin/env bash
# `make run`: the hub on the embedded default (in-memory history) with a development key, plus
# the demo page URL and a ready-to-paste publish command.
set -euo pipefail
bin=$1 addr=$2 key=$3
# A spec token: aud is the hub's URL (its default resource identifier), iss names the issuer.
pub=$("$bin" token --key "$key" --publish '*' --subscribe '*' --exp 86400 \
      --audience "http://$addr/.well-known/mercure" --issuer sluice-dev)
cat <<MSG

  sluice (development key — never use it in production)

  demo page:  http://$addr/#jwt=$pub
  subscribe:  curl -N 'http://$addr/.well-known/mercure?topic=demo'
  publish:    curl -d topic=demo -d data=hello -H 'Authorization: Bearer $pub' http://$addr/.well-known/mercure

  Ctrl-C drains every stream and stops.

MSG
exec "$bin" --listen "$addr" --jwt-key "$key" --anonymous
