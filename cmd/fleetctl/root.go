package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/buildinfo"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// Exit codes, so scripts and pipelines can tell failures apart.
const (
	exitOK              = 0
	exitError           = 1  // any other failure
	exitUsage           = 2  // bad flags or arguments, or invalid input
	exitNotFound        = 3  // the named object does not exist
	exitConflict        = 4  // it exists already, or changed under us
	exitUnavailable     = 5  // no controller or no leader reachable
	exitUnimplemented   = 6  // the controller does not offer this yet
	exitRolloutFailed   = 10 // rollout status --watch: the rollout failed or was rolled back
	exitRolloutAborted  = 11 // rollout status --watch: the rollout was aborted
	exitPermissionError = 12 // the controller refused the caller
	exitWatchTimeout    = 13 // rollout status --watch --timeout: the rollout had not ended in time
)

// app is one invocation's state.
type app struct {
	in          io.Reader
	out, errOut io.Writer

	server     string
	configPath string
	context    string
	output     string
	noHeaders  bool
	dryRun     string // apply's --dry-run
	allowEmpty bool   // --allow-empty of the commands that create rollouts
	creds      credentials
	timeout    time.Duration

	clients *clients
	// servers are every controller URL given (--server a,b,c); each call goes to the one that
	// answered last and moves on when a node refuses the connection (failover.go).
	// A --watch moves on to the next when its controller goes away.
	servers    []string
	httpClient *http.Client
	clientOpts []connect.ClientOption
}

type clients struct {
	profiles   ebbflowv1connect.ProfileServiceClient
	clusters   ebbflowv1connect.ClusterServiceClient
	rollouts   ebbflowv1connect.RolloutServiceClient
	controller ebbflowv1connect.ControllerServiceClient
	audit      ebbflowv1connect.AuditServiceClient
	access     ebbflowv1connect.AccessServiceClient
}

// exitError carries an exit code through cobra.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func execute(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &app{in: in, out: out, errOut: errOut}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := codeOf(err)
	if errors.Is(err, errDiffers) {
		return code
	}
	fmt.Fprintln(errOut, "fleetctl:", describe(err))
	return code
}

// describe turns an error into one plain sentence.
func describe(err error) string {
	if untrusted(err) {
		why := err.Error()
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			why = cv.Error()
		}
		return "the controller's certificate is not signed by a CA fleetctl trusts (" + why +
			"): pass the controller's CA with --ca <ca.crt>, $EBBFLOW_CA or the context's ca"
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch ce.Code() {
		case connect.CodeUnavailable:
			return "controller unavailable: " + ce.Message()
		case connect.CodeUnimplemented:
			return ce.Message()
		}
		if ce.Code() == connect.CodeInternal && strings.HasPrefix(ce.Message(), "400 Bad Request") {
			// Go's TLS server answers a plain HTTP request with a bare 400.
			return ce.Message() + " (internal): the controller may serve TLS only; use an https:// server URL"
		}
		return ce.Message() + " (" + ce.Code().String() + ")"
	}
	return err.Error()
}

// untrusted says whether err is a TLS verification failure (a missing or wrong --ca), which is
// a setting to fix, not an outage.
func untrusted(err error) bool {
	var ua x509.UnknownAuthorityError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &cv)
}

func codeOf(err error) int {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	if untrusted(err) {
		return exitError
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch ce.Code() {
		case connect.CodeInvalidArgument, connect.CodeOutOfRange:
			return exitUsage
		case connect.CodeNotFound:
			return exitNotFound
		case connect.CodeAlreadyExists, connect.CodeAborted, connect.CodeFailedPrecondition:
			return exitConflict
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
			return exitUnavailable
		case connect.CodeUnimplemented:
			return exitUnimplemented
		case connect.CodeUnauthenticated, connect.CodePermissionDenied:
			return exitPermissionError
		}
		return exitError
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.Contains(err.Error(), "accepts") || strings.Contains(err.Error(), "required flag") {
		return exitUsage
	}
	return exitError
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fleetctl",
		Short: "Drive Ebbflow: tuning profiles, clusters, rollouts and the controller",
		Long: `fleetctl talks to an Ebbflow controller.

The controller address comes from --server, else $EBBFLOW_SERVER, else the current context
of the config file (--config, $EBBFLOW_CONFIG, or ~/.config/ebbflow/config.yaml), else
https://127.0.0.1:7070.

Credentials: a bearer token (--token, --token-file, $EBBFLOW_TOKEN, $EBBFLOW_TOKEN_FILE, or the
context's), or a client certificate (--cert and --key); the controller's CA with --ca
($EBBFLOW_CA, or the context's). A controller's first start writes an admin token and its CA
into <data-dir>/pki (admin.token, ca.crt).

Exit codes: 0 ok, 1 error, 2 invalid input, 3 not found, 4 conflict, 5 controller unavailable,
6 not offered by this controller, 10 rollout failed, 11 rollout aborted, 12 permission denied,
13 rollout status --watch --timeout passed before the rollout ended. fleetctl diff exits 1 when
it finds differences.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           buildinfo.Version(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setup(cmd) },
	}
	f := root.PersistentFlags()
	f.StringVar(&a.server, "server", "", "controller URL, or several comma-separated (a call moves on when one refuses the connection, a --watch when its stream breaks); overrides $EBBFLOW_SERVER and the config file")
	f.StringVar(&a.configPath, "config", "", "config file (default $EBBFLOW_CONFIG or ~/.config/ebbflow/config.yaml)")
	f.StringVar(&a.context, "context", "", "config context to use (default: the current context)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, wide, json, yaml, name or jsonpath=TEMPLATE")
	f.BoolVar(&a.noHeaders, "no-headers", false, "print tables without their header row")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each call; with rollout status --watch, of the whole watch (unbounded unless given)")
	a.creds.flags(f)
	root.AddCommand(a.applyCmd(), a.diffCmd(), a.getCmd(), a.describeCmd(), a.profileCmd(), a.clusterCmd(), a.rolloutCmd(), a.controllerCmd(), a.auditCmd(), a.configCmd(),
		a.tokenCmd(), a.whoamiCmd(), a.versionCmd())
	strictGroups(root)
	_ = root.RegisterFlagCompletionFunc("output", completeOutput)
	_ = root.RegisterFlagCompletionFunc("context", a.completeContexts)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	return root
}

// strictGroups makes every command that only groups others (fleetctl, rollout, profile, ...)
// refuse an unknown subcommand with a usage error (exit 2) and the closest names, instead of
// printing its help and exiting 0: `fleetctl rollout get x` is a typo a script must see. Alone,
// a group still prints its help.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageErr("%s (see %s --help)", msg, cmd.CommandPath())
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// setup resolves the server and builds the clients.
func (a *app) setup(cmd *cobra.Command) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	if cmd.HasParent() && cmd.Parent().Name() == "config" {
		return nil
	}
	if cmd.Name() == cobra.ShellCompRequestCmd || cmd.Name() == cobra.ShellCompNoDescRequestCmd {
		return nil // completion sets up for the command it completes (completion.go)
	}
	cfg, err := loadConfig(a.configFile())
	if err != nil {
		return err
	}
	server := a.server
	if server == "" {
		server = os.Getenv("EBBFLOW_SERVER")
	}
	var ctxCfg *contextConfig
	if server == "" || a.context != "" {
		ctxCfg, err = cfg.pick(a.context)
		if err != nil {
			return err
		}
		if ctxCfg != nil && (server == "" || a.context != "") {
			server = ctxCfg.Server
		}
	}
	if server == "" {
		server = "https://127.0.0.1:7070"
	}
	a.servers = nil
	for _, s := range strings.Split(server, ",") {
		if s = strings.TrimRight(strings.TrimSpace(s), "/"); s == "" {
			continue
		}
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			return usageErr("server %q: want http://host:port or https://host:port", s)
		}
		a.servers = append(a.servers, s)
	}
	if len(a.servers) == 0 {
		return usageErr("server %q: want http://host:port or https://host:port", server)
	}
	server = a.servers[0]
	tel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleetctl"})
	if err != nil {
		return err
	}
	otelI, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(tel.Tracer),
		otelconnect.WithMeterProvider(tel.Meter), otelconnect.WithPropagator(telemetry.Propagator()))
	if err != nil {
		return err
	}
	token, err := a.creds.resolve(ctxCfg)
	if err != nil {
		return err
	}
	hc, err := a.creds.httpClient(ctxCfg)
	if err != nil {
		return err
	}
	// The watch follows the servers itself (status.go), on the plain client; every other
	// call goes through the failover.
	a.httpClient = hc
	if len(a.servers) > 1 {
		tr := hc.Transport
		if tr == nil {
			tr = http.DefaultTransport
		}
		fo, err := newFailover(tr, a.servers)
		if err != nil {
			return usageErr("server: %v", err)
		}
		hc = &http.Client{Transport: fo, Timeout: hc.Timeout, Jar: hc.Jar, CheckRedirect: hc.CheckRedirect}
	}
	opts := []connect.ClientOption{connect.WithInterceptors(otelI, identity(token), retryUnavailable())}
	a.clientOpts = opts
	a.clients = &clients{
		profiles:   ebbflowv1connect.NewProfileServiceClient(hc, server, opts...),
		clusters:   ebbflowv1connect.NewClusterServiceClient(hc, server, opts...),
		rollouts:   ebbflowv1connect.NewRolloutServiceClient(hc, server, opts...),
		controller: ebbflowv1connect.NewControllerServiceClient(hc, server, opts...),
		audit:      ebbflowv1connect.NewAuditServiceClient(hc, server, opts...),
		access:     ebbflowv1connect.NewAccessServiceClient(hc, server, opts...),
	}
	return nil
}

// identity sends who is calling: the bearer token when there is one, and the local user's
// name (which only a controller running without authentication records).
func identity(token string) connect.Interceptor {
	actor := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		actor = u.Username
	}
	set := func(h http.Header) {
		h.Set("Ebbflow-Actor", actor)
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
	}
	return &headerInterceptor{set: set}
}

type headerInterceptor struct{ set func(http.Header) }

func (h *headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		h.set(req.Header())
		return next(ctx, req)
	}
}

func (h *headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		h.set(conn.RequestHeader())
		return conn
	}
}

func (h *headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// call bounds one unary call by --timeout.
func (a *app) call(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.timeout)
}
