// The Go net/http peer of examples/http_server.rs: the same /json
// endpoint (TechEmpower's JSON test body), for
// `wrk -c 100 -d 10s http://127.0.0.1:PORT/json`. Standard library only.
// Usage: go run . -port 8081
package main

import (
	"flag"
	"fmt"
	"net/http"
)

var body = []byte(`{"message":"Hello, World!"}`)

func main() {
	port := flag.Int("port", 8081, "port on 127.0.0.1")
	flag.Parse()
	http.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Server", "go")
		w.Write(body)
	})
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	fmt.Println("go net/http listening on", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		panic(err)
	}
}
