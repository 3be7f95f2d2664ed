package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"github.com/clusterdns/clusterdns/internal/dirwatch"
)

// IsClusterFile reports whether a file name is read by the file source
// (YAML or JSON manifests); zone files (*.zone) belong to the server.
func IsClusterFile(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// FileSource feeds a Store from Kubernetes manifests in a folder: multi-
// document YAML or JSON of Service, EndpointSlice, Pod, Namespace and
// ServiceImport (multicluster.x-k8s.io) objects,
// and List objects of them (the output of `kubectl get svc,endpointslices,
// pods -A -o yaml`). Each file keeps its last good contents: a file that no
// longer parses is refused with path:line in the error and the log, and what
// it held before keeps being served.
type FileSource struct {
	fsys  fs.FS
	dir   string // on-disk folder for watching; "" for an embedded FS
	store *Store
	log   *slog.Logger
	files map[string]parsedFile
}

type parsedFile struct {
	sum  [32]byte
	stat fileStamp // what the file looked like when read
	objs Objects
}

// fileStamp is a file's size and modification time: while both stay the
// same, the periodic poll does not read the file again.
type fileStamp struct {
	size  int64
	mtime time.Time
}

// NewFileSource reads fsys (the embedded default, or os.DirFS(dir) with dir
// set so that Watch can follow changes) into store.
func NewFileSource(fsys fs.FS, dir string, store *Store, log *slog.Logger) *FileSource {
	if log == nil {
		log = slog.Default()
	}
	return &FileSource{fsys: fsys, dir: dir, store: store, log: log, files: map[string]parsedFile{}}
}

// Load reads every cluster file, replaces the store's contents with their
// union, marks the store synced and publishes. Files that fail keep their
// last good contents (none on the first load); the errors are joined in the
// result, each naming path:line. A missing or unreadable folder is an error
// and changes nothing.
func (f *FileSource) Load() error {
	entries, err := fs.ReadDir(f.fsys, ".")
	if err != nil {
		return fmt.Errorf("read cluster folder %s: %w", f.where(), err)
	}
	var errs []error
	seen := map[string]bool{}
	changed := false
	var in *interner // shares repeated strings within this load
	for _, e := range entries {
		if !IsClusterFile(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		if e.IsDir() {
			if _, had := f.files[name]; had {
				// A file replaced by a folder is unreadable, not removed.
				seen[name] = true
				errs = append(errs, fmt.Errorf("%s: is a folder now, last good contents kept", f.path(name)))
			}
			continue
		}
		seen[name] = true
		var stamp fileStamp
		if info, err := e.Info(); err == nil {
			stamp = fileStamp{size: info.Size(), mtime: info.ModTime()}
			if old, ok := f.files[name]; ok && old.stat == stamp && !stamp.mtime.IsZero() {
				continue // unchanged: not even read (a 40 MB file polled every 2 s)
			}
		}
		data, err := fs.ReadFile(f.fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.path(name), err))
			continue
		}
		sum := sha256.Sum256(data)
		if old, ok := f.files[name]; ok && old.sum == sum {
			old.stat = stamp
			f.files[name] = old
			continue
		}
		objs, err := ParseManifests(f.path(name), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if in == nil {
			in = newInterner()
		}
		objs = compactObjects(objs, in)
		f.files[name] = parsedFile{sum: sum, stat: stamp, objs: objs}
		changed = true
	}
	for name := range f.files {
		if !seen[name] {
			delete(f.files, name)
			changed = true
		}
	}
	if changed || f.store.Snapshot() == nil {
		var all Objects
		for _, name := range slices.Sorted(maps.Keys(f.files)) {
			o := f.files[name].objs
			all.Services = append(all.Services, o.Services...)
			all.Slices = append(all.Slices, o.Slices...)
			all.Pods = append(all.Pods, o.Pods...)
			all.Namespaces = append(all.Namespaces, o.Namespaces...)
			all.Imports = append(all.Imports, o.Imports...)
			all.MCSSlices = append(all.MCSSlices, o.MCSSlices...)
		}
		f.store.Replace(all)
		f.store.MarkSynced()
		snap := f.store.Flush()
		f.log.Info("cluster files loaded", "dir", f.where(), "files", len(f.files),
			"services", snap.ServiceCount(), "serial", snap.Serial)
	}
	return errors.Join(errs...)
}

// Watch reloads on every change in the folder until ctx ends, logging
// refused files. It returns at once for an embedded FS.
func (f *FileSource) Watch(ctx context.Context) error {
	if f.dir == "" {
		return nil
	}
	return dirwatch.Watch(ctx, f.log, f.dir, 50*time.Millisecond, 2*time.Second, func() {
		if err := f.Load(); err != nil {
			f.log.Error("cluster file refused, last good contents kept", "err", err)
		}
	})
}

func (f *FileSource) where() string {
	if f.dir == "" {
		return "(embedded zones/)"
	}
	return f.dir
}

func (f *FileSource) path(name string) string {
	if f.dir == "" {
		return "zones/" + name
	}
	return path.Join(f.dir, name)
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// ParseManifests parses one file of manifests. file is used in errors, which
// read "file:line: what". Objects of other kinds are skipped; a document
// that is not valid YAML, a field of the wrong type or an unknown field, and
// an address that is not an IP are errors, and the whole file is refused.
func ParseManifests(file string, data []byte) (Objects, error) {
	var out Objects
	for _, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(doc.body))) == 0 {
			continue
		}
		fail := func(err error) error {
			msg := err.Error()
			if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
				n, _ := strconv.Atoi(msg[m[2]:m[3]])
				msg = strings.Replace(msg[:m[0]]+msg[m[1]:], ": : ", ": ", 1)
				return fmt.Errorf("%s:%d: %s", file, doc.line+n-1, strings.TrimPrefix(msg, "error converting YAML to JSON: "))
			}
			return fmt.Errorf("%s:%d: %w", file, doc.line+lineOfQuoted(doc.body, msg), err)
		}
		js, err := yaml.YAMLToJSON(doc.body)
		if err != nil {
			return Objects{}, fail(err)
		}
		if err := decodeObject(js, &out); err != nil {
			return Objects{}, fail(err)
		}
	}
	return out, nil
}

var quoted = regexp.MustCompile(`"([^"]+)"`)

// lineOfQuoted finds the first quoted value of an error message in the
// document and returns its line offset (0 when it is not there), so that
// "clusterIP \"x\": ..." points at the line holding x.
func lineOfQuoted(body []byte, msg string) int {
	for _, m := range quoted.FindAllStringSubmatch(msg, -1) {
		if i := bytes.Index(body, []byte(m[1])); i >= 0 {
			return bytes.Count(body[:i], []byte("\n"))
		}
	}
	return 0
}

type document struct {
	line int // 1-based line of the document's first line
	body []byte
}

// splitDocuments cuts a YAML stream at "---" lines, remembering where each
// document starts so that errors can name the file's line.
func splitDocuments(data []byte) []document {
	var docs []document
	start, line, startLine := 0, 1, 1
	for i := 0; i <= len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i
		}
		l := strings.TrimRight(string(data[i:end]), "\r")
		if l == "---" || strings.HasPrefix(l, "--- ") {
			docs = append(docs, document{line: startLine, body: data[start:i]})
			start, startLine = min(end+1, len(data)), line+1
		}
		i, line = end+1, line+1
	}
	docs = append(docs, document{line: startLine, body: data[start:]})
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, t...)
		}
	}
	return out
}

type typeMeta struct {
	Kind  string            `json:"kind"`
	Items []json.RawMessage `json:"items"`
}

func decodeObject(js []byte, out *Objects) error {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	switch tm.Kind {
	case "Service":
		var o corev1.Service
		if err := yaml.UnmarshalStrict(js, &o); err != nil {
			return fmt.Errorf("Service: %w", err)
		}
		s, err := ConvertService(&o)
		if err != nil {
			return err
		}
		out.Services = append(out.Services, s)
	case "EndpointSlice":
		var o discoveryv1.EndpointSlice
		if err := yaml.UnmarshalStrict(js, &o); err != nil {
			return fmt.Errorf("EndpointSlice: %w", err)
		}
		if IsMCSSlice(o.Labels) {
			s, err := ConvertMCSEndpointSlice(&o)
			if err != nil {
				return err
			}
			out.MCSSlices = append(out.MCSSlices, s)
			return nil
		}
		if o.Labels[ServiceNameLabel] == "" {
			return fmt.Errorf("EndpointSlice %s: no label %s (nor %s)", o.Name, ServiceNameLabel, MCSServiceNameLabel)
		}
		s, err := ConvertEndpointSlice(&o)
		if err != nil {
			return err
		}
		out.Slices = append(out.Slices, s)
	case "Pod":
		var o corev1.Pod
		if err := yaml.UnmarshalStrict(js, &o); err != nil {
			return fmt.Errorf("Pod: %w", err)
		}
		p, err := ConvertPod(&o)
		if err != nil {
			return err
		}
		out.Pods = append(out.Pods, p)
	case "ServiceImport":
		imp, err := ParseServiceImport(js)
		if err != nil {
			return err
		}
		out.Imports = append(out.Imports, imp)
	case "Namespace":
		var o corev1.Namespace
		if err := yaml.UnmarshalStrict(js, &o); err != nil {
			return fmt.Errorf("Namespace: %w", err)
		}
		out.Namespaces = append(out.Namespaces, o.Name)
	case "":
		return fmt.Errorf("document without kind")
	default:
		if strings.HasSuffix(tm.Kind, "List") {
			for i, item := range tm.Items {
				if err := decodeObject(item, out); err != nil {
					return fmt.Errorf("%s item %d: %w", tm.Kind, i, err)
				}
			}
		}
		// Other kinds (Deployments, ConfigMaps, ...) are not part of DNS.
	}
	return nil
}
