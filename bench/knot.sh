# Sourced by bench/run.sh and bench/extra.sh: the one Knot DNS configuration
# the benchmarks compare clusterdns with.

# knot_conf DIR ZONE_DIR PORT UDP_WORKERS: writes DIR/knot.conf serving
# ZONE_DIR/cluster.local.zone on 127.0.0.1@PORT with UDP_WORKERS UDP
# workers, one TCP and one background worker, everything else under DIR.
knot_conf() {
	local dir=$1 zones=$2 port=$3 workers=$4
	rm -rf "$dir" && mkdir -p "$dir/run" "$dir/storage"
	cat >"$dir/knot.conf" <<-EOC
		# Written by bench/knot.sh: one zone, $workers UDP worker(s), everything under $dir.
		server:
		    rundir: "$dir/run"
		    listen: 127.0.0.1@$port
		    udp-workers: $workers
		    tcp-workers: 1
		    background-workers: 1
		log:
		  - target: stderr
		    any: warning
		database:
		    storage: "$dir/storage"
		zone:
		  - domain: cluster.local.
		    storage: "$zones"
		    file: "cluster.local.zone"
		    journal-content: none
		    zonefile-sync: -1
	EOC
}
