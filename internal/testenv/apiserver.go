// Package testenv starts real Kubernetes control-plane processes for
// integration tests: an etcd and a kube-apiserver built by
// test/apiserver/build.sh, listening on free 127.0.0.1 ports.
//
// Typical use:
//
//	api := testenv.StartAPIServer(t)
//	client := api.Client()
//	// run our server with --kubeconfig=api.Kubeconfig ...
//	api.StopAPIServer()  // outage: etcd keeps running, the port goes dark
//	api.StartAPIServer() // back on the same port, same data
//
// The binaries are looked up in $CLUSTERDNS_APISERVER_BIN, else in the cache
// folder that build.sh prints. When they are missing the test is skipped, or
// fails when CI=true.
package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// EnvBinDir names the folder holding the kube-apiserver and etcd binaries
	// (the last line printed by test/apiserver/build.sh).
	EnvBinDir = "CLUSTERDNS_APISERVER_BIN"
	// EnvCacheRoot overrides the cache root used by build.sh
	// (default $HOME/.cache/clusterdns).
	EnvCacheRoot = "CLUSTERDNS_CACHE"

	// ServiceCIDR is the --service-cluster-ip-range of the apiserver.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the ClusterIP the apiserver gives the
	// "kubernetes" Service in "default" (the first address of ServiceCIDR).
	KubernetesServiceIP = "10.96.0.1"

	// AdminUser is the user name of APIServer.Token, a member of
	// system:masters.
	AdminUser = "clusterdns-admin"

	buildScript = "test/apiserver/build.sh"
	goSumPath   = "test/apiserver/go.sum"

	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 60 * time.Second
	stopTimeout           = 10 * time.Second
	logTailLines          = 150
)

// Options tune StartAPIServerWithOptions. The zero value is what
// StartAPIServer uses.
type Options struct {
	// ExtraArgs are appended to kube-apiserver's command line (a later flag
	// overrides an earlier one), e.g. "--feature-gates=...".
	ExtraArgs []string
}

// APIServer is a running etcd plus kube-apiserver. Its methods that can fail
// call t.Fatalf and so must be called from the test's goroutine.
type APIServer struct {
	// Kubeconfig is the path of a kubeconfig file (admin token, CA) for
	// --kubeconfig flags and clientcmd.
	Kubeconfig string
	// Host is the apiserver's URL, https://127.0.0.1:<port>. It stays the
	// same across StopAPIServer/StartAPIServer.
	Host string
	// Port is the apiserver's secure port.
	Port int
	// Token is a bearer token of AdminUser, in group system:masters.
	Token string
	// CAFile is the PEM file of the CA that signed the serving certificate.
	CAFile string
	// EtcdEndpoint is etcd's client URL, http://127.0.0.1:<port>.
	EtcdEndpoint string
	// Dir is the temporary folder holding data, certificates and logs
	// (etcd.log, kube-apiserver.log).
	Dir string
	// BinDir is the folder the binaries came from.
	BinDir string

	t         testing.TB
	caPEM     []byte
	apiArgs   []string
	apiLog    string
	etcdLog   string
	mu        sync.Mutex
	etcd      *process
	apiserver *process
}

// StartAPIServer starts etcd and kube-apiserver for the test and stops them
// in t.Cleanup. It returns once /readyz answers 200.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	return StartAPIServerWithOptions(t, Options{})
}

// StartAPIServerWithOptions is StartAPIServer with options.
func StartAPIServerWithOptions(t testing.TB, opts Options) *APIServer {
	t.Helper()
	binDir := requireBinaries(t, "etcd", "kube-apiserver")

	dir := t.TempDir() // its removal runs after our cleanup below
	a := &APIServer{
		t:       t,
		Dir:     dir,
		BinDir:  binDir,
		apiLog:  filepath.Join(dir, "kube-apiserver.log"),
		etcdLog: filepath.Join(dir, "etcd.log"),
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			a.dumpLogs()
		}
	})

	if err := a.writeCredentials(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := a.startEtcd(); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	a.Port = port
	a.Host = "https://127.0.0.1:" + strconv.Itoa(port)
	a.apiArgs = append(a.apiserverArgs(), opts.ExtraArgs...)
	if err := a.writeKubeconfig(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	a.StartAPIServer()
	return a
}

// RESTConfig returns a new admin rest.Config for the apiserver.
func (a *APIServer) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:        a.Host,
		BearerToken: a.Token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: append([]byte(nil), a.caPEM...),
		},
		QPS:   200,
		Burst: 400,
	}
}

// Client returns a new admin clientset for the apiserver.
func (a *APIServer) Client() kubernetes.Interface {
	a.t.Helper()
	c, err := kubernetes.NewForConfig(a.RESTConfig())
	if err != nil {
		a.t.Fatalf("testenv: clientset: %v", err)
	}
	return c
}

// StopAPIServer stops kube-apiserver only (etcd keeps running) the way a
// rollout would: SIGTERM, so it closes its port at once and its watches
// end, then waits for the process to exit (about 1 s). It does nothing when
// the apiserver is not running.
func (a *APIServer) StopAPIServer() {
	a.takeAPIServer().stop(stopTimeout)
}

// KillAPIServer is StopAPIServer with SIGKILL: a crash, connections reset.
func (a *APIServer) KillAPIServer() {
	a.takeAPIServer().stop(0)
}

func (a *APIServer) takeAPIServer() *process {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.apiserver
	a.apiserver = nil
	return p
}

// StartAPIServer (re)starts kube-apiserver on the same port, with the same
// flags, certificates and etcd, and waits for /readyz. It fails the test when
// the apiserver is already running or does not become ready.
func (a *APIServer) StartAPIServer() {
	a.t.Helper()
	a.mu.Lock()
	running := a.apiserver != nil
	a.mu.Unlock()
	if running {
		a.t.Fatalf("testenv: kube-apiserver is already running")
	}
	p, err := startProcess(filepath.Join(a.BinDir, "kube-apiserver"), a.apiArgs, a.apiLog)
	if err != nil {
		a.t.Fatalf("testenv: %v", err)
	}
	a.mu.Lock()
	a.apiserver = p
	a.mu.Unlock()
	if err := a.waitAPIServerReady(p); err != nil {
		a.t.Fatalf("testenv: %v", err)
	}
}

// Restart stops kube-apiserver (StopAPIServer) and starts it again on the
// same port (StartAPIServer).
func (a *APIServer) Restart() {
	a.t.Helper()
	a.StopAPIServer()
	a.StartAPIServer()
}

// Stop kills kube-apiserver and etcd (their process groups, with SIGKILL:
// the data is thrown away) and waits for them to exit. It is called by
// t.Cleanup and may be called more than once.
func (a *APIServer) Stop() {
	a.KillAPIServer()
	a.mu.Lock()
	p := a.etcd
	a.etcd = nil
	a.mu.Unlock()
	p.stop(0)
}

// Logs returns the contents of the kube-apiserver and etcd log files.
func (a *APIServer) Logs() (apiserver, etcd string) {
	api, _ := os.ReadFile(a.apiLog)
	e, _ := os.ReadFile(a.etcdLog)
	return string(api), string(e)
}

func (a *APIServer) dumpLogs() {
	for _, f := range []struct{ name, path string }{
		{"kube-apiserver", a.apiLog},
		{"etcd", a.etcdLog},
	} {
		a.t.Logf("testenv: last %d lines of %s (%s):\n%s", logTailLines, f.name, f.path, tail(f.path, logTailLines))
	}
}

// ---- binaries -------------------------------------------------------------

// BinDir returns the folder that holds (or would hold) the binaries:
// $CLUSTERDNS_APISERVER_BIN if set, else the cache folder that
// test/apiserver/build.sh builds into, keyed by the sha256 of
// test/apiserver/go.sum found by walking up from the working directory.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d, nil
	}
	sum, err := findUp(goSumPath)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(sum)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(data)
	return filepath.Join(cacheRoot(), "apiserver", hex.EncodeToString(h[:])), nil
}

// Binary returns the path of a binary built by test/apiserver/build.sh
// ("kube-apiserver", "etcd" or, after `build.sh kube-proxy`, "kube-proxy"),
// or an error when it is not there.
func Binary(name string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", p)
	}
	return p, nil
}

// RequireBinary returns the path of a binary built by test/apiserver/build.sh.
// When it is missing the test is skipped, or fails when CI=true; buildArgs
// are the build.sh arguments that build it (none for kube-apiserver and
// etcd, "kube-proxy" for kube-proxy).
func RequireBinary(t testing.TB, name string, buildArgs ...string) string {
	t.Helper()
	requireBinariesWith(t, buildArgs, name)
	p, _ := Binary(name)
	return p
}

func requireBinaries(t testing.TB, names ...string) string {
	t.Helper()
	return requireBinariesWith(t, nil, names...)
}

func requireBinariesWith(t testing.TB, buildArgs []string, names ...string) string {
	t.Helper()
	dir, err := BinDir()
	var missing []string
	if err == nil {
		for _, n := range names {
			if _, e := Binary(n); e != nil {
				missing = append(missing, n)
			}
		}
	}
	if err == nil && len(missing) == 0 {
		return dir
	}
	cmd := strings.TrimSpace("bash " + buildScript + " " + strings.Join(buildArgs, " "))
	var msg string
	if err != nil {
		msg = fmt.Sprintf("testenv: cannot locate the %s binaries (%v); run `%s` from the repository root and export %s=<its last line>",
			strings.Join(names, "/"), err, cmd, EnvBinDir)
	} else {
		msg = fmt.Sprintf("testenv: %s not built in %s; run `%s` from the repository root (about 10 minutes the first time) or export %s=<folder with the binaries>",
			strings.Join(missing, ", "), dir, cmd, EnvBinDir)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func cacheRoot() string {
	if r := os.Getenv(EnvCacheRoot); r != "" {
		return r
	}
	home := os.Getenv("HOME")
	if home == "" {
		home = os.TempDir() // $TMPDIR or /tmp, as build.sh
	}
	return filepath.Join(home, ".cache", "clusterdns")
}

func findUp(rel string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s not found above %s", rel, wd)
		}
		d = parent
	}
}

// ---- etcd -------------------------------------------------------------------

func (a *APIServer) startEtcd() error {
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	a.EtcdEndpoint = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	args := []string{
		"--name=testenv",
		"--data-dir=" + filepath.Join(a.Dir, "etcd-data"),
		"--listen-client-urls=" + a.EtcdEndpoint,
		"--advertise-client-urls=" + a.EtcdEndpoint,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=testenv=" + peer,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync", // test data: skip fsync for speed
		"--log-level=warn",
	}
	p, err := startProcess(filepath.Join(a.BinDir, "etcd"), args, a.etcdLog)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.etcd = p
	a.mu.Unlock()

	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(etcdReadyTimeout)
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("etcd exited before becoming healthy: %v (log: %s)", p.waitErr(), a.etcdLog)
		}
		resp, err := hc.Get(a.EtcdEndpoint + "/health")
		if err == nil {
			var h struct {
				Health string `json:"health"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && derr == nil && h.Health == "true" {
				return nil
			}
			last = fmt.Sprintf("status %d, health %q", resp.StatusCode, h.Health)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not healthy at %s/health after %v: %s", a.EtcdEndpoint, etcdReadyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- kube-apiserver -------------------------------------------------------

func (a *APIServer) apiserverArgs() []string {
	certDir := filepath.Join(a.Dir, "certs")
	return []string{
		"--etcd-servers=" + a.EtcdEndpoint,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(a.Port),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + filepath.Join(certDir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(certDir, "apiserver.key"),
		"--token-auth-file=" + filepath.Join(a.Dir, "tokens.csv"),
		"--service-account-key-file=" + filepath.Join(certDir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(certDir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--endpoint-reconciler-type=none",
		// No controller-manager creates "default" ServiceAccounts, so let
		// tests create Pods without one.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	}
}

func (a *APIServer) waitAPIServerReady(p *process) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(a.caPEM)
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(apiserverReadyTimeout)
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("kube-apiserver exited before becoming ready: %v (log: %s)", p.waitErr(), a.apiLog)
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, a.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+a.Token)
		resp, err := hc.Do(req)
		if err == nil {
			buf := make([]byte, 512)
			n, _ := resp.Body.Read(buf)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, buf[:n])
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready at %s/readyz after %v: %s", a.Host, apiserverReadyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeCredentials writes a CA and a serving certificate for 127.0.0.1, the
// service-account key pair and the token file.
func (a *APIServer) writeCredentials() error {
	certDir := filepath.Join(a.Dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "clusterdns-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	a.CAFile = filepath.Join(certDir, "ca.crt")

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default",
			"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(KubernetesServiceIP), net.IPv6loopback},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}

	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	a.Token = hex.EncodeToString(tok)

	files := []struct {
		path string
		data []byte
	}{
		{a.CAFile, a.caPEM},
		{filepath.Join(certDir, "apiserver.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})},
		{filepath.Join(certDir, "apiserver.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER})},
		{filepath.Join(certDir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saKeyDER})},
		{filepath.Join(certDir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})},
		// token,user,uid,"group1,group2"
		{filepath.Join(a.Dir, "tokens.csv"), fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", a.Token, AdminUser, AdminUser)},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (a *APIServer) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{
		Server:                   a.Host,
		CertificateAuthorityData: a.caPEM,
	}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: a.Token}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "testenv"
	a.Kubeconfig = filepath.Join(a.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*cfg, a.Kubeconfig)
}

// ---- processes ------------------------------------------------------------

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// startProcess runs bin in its own process group with stdout and stderr
// appended to logPath.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	fmt.Fprintf(f, "==== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL, // best effort if the test binary dies
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{name: filepath.Base(bin), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) waitErr() error {
	<-p.done
	return p.err
}

// stop sends SIGTERM to the process group, then SIGKILL after grace (at
// once when grace is 0), and waits for the process to exit. A nil process is
// a no-op.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	if grace > 0 && !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Kill whatever is left in the group (also children of an exited leader).
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
