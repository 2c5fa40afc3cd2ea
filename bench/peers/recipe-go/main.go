// Command recipe is the benchmark's baseline: the SSE server a Go developer writes by following
// the well-known graceful-shutdown recipe, using only the standard library. It is meant to be
// faithful, not weak: signal.NotifyContext for SIGINT/SIGTERM, an http.Server stopped with
// Shutdown under a timeout, one broker goroutine owning the subscriber set through
// register/unregister channels, a buffered channel per client filled with a non-blocking send
// (a full buffer drops the message — that is where the recipe loses events under load), and a
// handler that writes "data:" lines, flushes each event, and on shutdown stops at an event
// boundary and sends a final "event: close".
//
// Endpoints: GET /events?topic=T streams T; POST /publish?topic=T publishes, with either a form
// body (topic, data) or a raw body, and answers 200 once the broker has the message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type client struct {
	topic string
	ch    chan string
}

type message struct {
	topic string
	data  string
}

// broker owns the subscriber set; only its run goroutine touches clients.
type broker struct {
	register   chan *client
	unregister chan *client
	publish    chan message
	clients    map[string]map[*client]struct{}
}

func newBroker() *broker {
	return &broker{
		register:   make(chan *client),
		unregister: make(chan *client),
		publish:    make(chan message),
		clients:    make(map[string]map[*client]struct{}),
	}
}

func (b *broker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-b.register:
			set := b.clients[c.topic]
			if set == nil {
				set = make(map[*client]struct{})
				b.clients[c.topic] = set
			}
			set[c] = struct{}{}
		case c := <-b.unregister:
			if set := b.clients[c.topic]; set != nil {
				delete(set, c)
				if len(set) == 0 {
					delete(b.clients, c.topic)
				}
			}
		case m := <-b.publish:
			for c := range b.clients[m.topic] {
				// Never let one slow reader stall the broker: drop when its buffer is full.
				select {
				case c.ch <- m.data:
				default:
				}
			}
		}
	}
}

// writeEvent frames data as SSE, one "data:" line per line of the payload.
func writeEvent(w io.Writer, data string) error {
	var sb strings.Builder
	for _, line := range strings.Split(data, "\n") {
		sb.WriteString("data: ")
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	sb.WriteByte('\n')
	_, err := io.WriteString(w, sb.String())
	return err
}

func eventsHandler(b *broker, shutdown <-chan struct{}, buffer int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		topic := r.URL.Query().Get("topic")
		if topic == "" {
			http.Error(w, "missing topic", http.StatusBadRequest)
			return
		}
		c := &client{topic: topic, ch: make(chan string, buffer)}
		select {
		case b.register <- c:
		case <-shutdown:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		defer func() {
			select {
			case b.unregister <- c:
			case <-shutdown:
			}
		}()

		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("Connection", "keep-alive")
		w.WriteHeader(http.StatusOK)
		flusher.Flush()

		for {
			select {
			case <-r.Context().Done():
				return
			case <-shutdown:
				io.WriteString(w, "event: close\ndata: server shutting down\n\n")
				flusher.Flush()
				return
			case data := <-c.ch:
				if err := writeEvent(w, data); err != nil {
					return
				}
				flusher.Flush()
			}
		}
	}
}

func publishHandler(b *broker, shutdown <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var m message
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m.topic, m.data = r.FormValue("topic"), r.FormValue("data")
		} else {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			m.topic, m.data = r.URL.Query().Get("topic"), string(body)
		}
		if m.topic == "" {
			http.Error(w, "missing topic", http.StatusBadRequest)
			return
		}
		select {
		case b.publish <- m:
			w.WriteHeader(http.StatusOK)
		case <-shutdown:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		}
	}
}

func main() {
	addr := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	buffer := flag.Int("buffer", 64, "messages buffered per client before drops")
	timeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long Shutdown may wait")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	b := newBroker()
	brokerCtx, stopBroker := context.WithCancel(context.Background())
	go b.run(brokerCtx)

	mux := http.NewServeMux()
	mux.HandleFunc("/events", eventsHandler(b, ctx.Done(), *buffer))
	mux.HandleFunc("/publish", publishHandler(b, ctx.Done()))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "recipe: listening on %s\n", *addr)

	select {
	case err := <-errc:
		log.Fatalf("recipe: %v", err)
	case <-ctx.Done():
	}
	stop()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("recipe: shutdown: %v", err)
		srv.Close()
	}
	stopBroker()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("recipe: %v", err)
	}
}
