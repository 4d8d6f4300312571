# Starts a throwaway PostgreSQL on a loopback port for the test suite and
# exports CLOUDPORT_TEST_POSTGRES_URL. Source it after lib.sh.
start_test_postgres() {
    apt_install postgresql
    local bin port dir
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    port="${CLOUDPORT_TEST_PG_PORT:-55432}"
    dir="/tmp/cloudport-test-pg"
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        log "starting PostgreSQL on 127.0.0.1:$port"
        rm -rf "$dir" && mkdir -p "$dir" && chown postgres: "$dir"
        su postgres -s /bin/sh -c "$bin/initdb -D $dir/data -A trust -U postgres" >/dev/null
        su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir/data -l $dir/log -w -o '-h 127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300' start" >/dev/null
    fi
    export CLOUDPORT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}
