#!/bin/sh
# nginx reads no environment variables, so the replica's port is written in.
sed "s/__PORT__/${PORT}/" nginx.conf.in > nginx.conf
mkdir -p tmp
exec nginx -p "$PWD" -c "$PWD/nginx.conf"
