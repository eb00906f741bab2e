package control

import (
	"embed"
	"io/fs"
	"net/http"
)

// The console: one page (console/index.html) and its hand-written CSS and
// JavaScript modules, embedded in the binary and served as they are, with
// no build step and nothing from elsewhere. The page reads only the JSON
// routes above and the event stream; see console/console.js.

//go:embed console
var consoleFiles embed.FS

// consoleCSP keeps the page to its own files and its own API.
const consoleCSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"

// console registers GET / (the page) and GET /console/ (its assets).
func (s *server) console() {
	files, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded directory is there by construction
	}
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", consoleCSP)
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	})
	assets := http.StripPrefix("/console/", http.FileServerFS(files))
	s.mux.HandleFunc("GET /console/{file}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
}
