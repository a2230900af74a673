# OpenBao on durable single-node Raft for bench/run's write row (keyward's
# writes are durable, so OpenBao's must be too). @...@ are filled in by bench/run.
storage "raft" {
  path    = "@DATA@"
  node_id = "bench"
}
listener "tcp" {
  address     = "127.0.0.1:@PORT@"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:@PORT@"
cluster_addr  = "http://127.0.0.1:@CPORT@"
disable_mlock = true
ui            = false
