// A stand-in for OpenFaaS's of-watchdog, used by `deno task bench fizzlet` only when
// of-watchdog itself cannot be built (the Go module proxy serves no version of it here).
// Go standard library only; it reads the same environment as of-watchdog and does the same
// work per request in its two modes:
//
//	mode=http       reverse proxy to upstream_url over a pooled http.Transport
//	mode=streaming  fork fprocess per request: body on stdin, stdout is the response
//
// fprocess is started once in http mode (as of-watchdog does) and per request otherwise.
package main

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	mode := env("mode", "streaming")
	port := env("port", "8080")
	fprocess := strings.Fields(env("fprocess", ""))
	timeout, err := time.ParseDuration(env("exec_timeout", "10s"))
	if err != nil {
		log.Fatalf("exec_timeout: %v", err)
	}
	var handler http.HandlerFunc
	switch mode {
	case "http":
		if len(fprocess) > 0 {
			cmd := exec.Command(fprocess[0], fprocess[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Start(); err != nil {
				log.Fatalf("fprocess: %v", err)
			}
		}
		upstream, err := url.Parse(env("upstream_url", "http://127.0.0.1:8080"))
		if err != nil {
			log.Fatalf("upstream_url: %v", err)
		}
		client := &http.Client{Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
		}}
		handler = func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			target := *upstream
			target.Path = r.URL.Path
			target.RawQuery = r.URL.RawQuery
			req, _ := http.NewRequestWithContext(ctx, r.Method, target.String(), r.Body)
			req.Header = r.Header.Clone()
			req.Host = r.Host
			res, err := client.Do(req)
			if err != nil {
				if ctx.Err() != nil {
					w.WriteHeader(http.StatusGatewayTimeout)
				} else {
					w.WriteHeader(http.StatusBadGateway)
				}
				return
			}
			defer res.Body.Close()
			for k, v := range res.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(res.StatusCode)
			io.Copy(w, res.Body)
		}
	case "streaming":
		if len(fprocess) == 0 {
			log.Fatal("fprocess is required in streaming mode")
		}
		handler = func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, fprocess[0], fprocess[1:]...)
			cmd.Stdin = r.Body
			cmd.Stdout = w
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				log.Printf("fprocess: %v", err)
			}
		}
	default:
		log.Fatalf("unknown mode %q", mode)
	}
	log.Printf("listening on %s (mode %s)", port, mode)
	log.Fatal(http.ListenAndServe(":"+port, handler))
}
