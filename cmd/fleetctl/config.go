package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// fileConfig is fleetctl's config file, like a kubeconfig: named contexts, one current.
type fileConfig struct {
	CurrentContext string          `json:"currentContext,omitempty"`
	Contexts       []contextConfig `json:"contexts,omitempty"`
}

type contextConfig struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	// Token is sent as a bearer token when set; TokenFile holds one.
	Token     string `json:"token,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`
	// CA is the controller's CA bundle (PEM file); Cert and Key a client certificate.
	CA   string `json:"ca,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

func (a *app) configFile() string {
	if a.configPath != "" {
		return a.configPath
	}
	if p := os.Getenv("EBBFLOW_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ebbflow", "config.yaml")
}

func loadConfig(path string) (*fileConfig, error) {
	cfg := &fileConfig{}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(b, cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

func (c *fileConfig) save(path string) error {
	if path == "" {
		return errors.New("no config file path: set --config or $EBBFLOW_CONFIG")
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// The file may hold tokens: owner-only.
	return os.WriteFile(path, b, 0o600)
}

// pick returns the named context, else the current one; nil when the file names none.
func (c *fileConfig) pick(name string) (*contextConfig, error) {
	if name == "" {
		name = c.CurrentContext
	}
	if name == "" {
		return nil, nil
	}
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i], nil
		}
	}
	return nil, usageErr("context %q is not in the config file", name)
}

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage fleetctl's config file (contexts: controller address and credentials)"}
	var server string
	var c contextConfig
	set := &cobra.Command{
		Use:   "set-context NAME --server URL [--ca FILE] [--token T | --token-file FILE | --cert FILE --key FILE]",
		Short: "Create or update a context (and make it current if there is none)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "" {
				return usageErr("--server is required")
			}
			path := a.configFile()
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			nc := c
			nc.Name, nc.Server = args[0], server
			for _, p := range []*string{&nc.TokenFile, &nc.CA, &nc.Cert, &nc.Key} {
				if *p != "" {
					if *p, err = filepath.Abs(*p); err != nil {
						return err
					}
				}
			}
			found := false
			for i := range cfg.Contexts {
				if cfg.Contexts[i].Name == args[0] {
					cfg.Contexts[i], found = nc, true
				}
			}
			if !found {
				cfg.Contexts = append(cfg.Contexts, nc)
			}
			if cfg.CurrentContext == "" {
				cfg.CurrentContext = args[0]
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "context %q set in %s\n", args[0], path)
			return nil
		},
	}
	set.Flags().StringVar(&server, "server", "", "controller URL")
	set.Flags().StringVar(&c.Token, "token", "", "bearer token")
	set.Flags().StringVar(&c.TokenFile, "token-file", "", "file holding the bearer token")
	set.Flags().StringVar(&c.CA, "ca", "", "the controller's CA bundle (PEM)")
	set.Flags().StringVar(&c.Cert, "cert", "", "client certificate (PEM)")
	set.Flags().StringVar(&c.Key, "key", "", "client certificate's key (PEM)")
	use := &cobra.Command{
		Use:   "use-context NAME",
		Short: "Make a context current",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configFile()
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if _, err := cfg.pick(args[0]); err != nil {
				return err
			}
			cfg.CurrentContext = args[0]
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "current context is %q\n", args[0])
			return nil
		},
	}
	view := &cobra.Command{
		Use:   "view",
		Short: "Print the config file (tokens hidden)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(a.configFile())
			if err != nil {
				return err
			}
			for i := range cfg.Contexts {
				if cfg.Contexts[i].Token != "" {
					cfg.Contexts[i].Token = "REDACTED"
				}
			}
			b, err := yaml.Marshal(cfg)
			if err != nil {
				return err
			}
			_, err = a.out.Write(b)
			return err
		},
	}
	getContexts := &cobra.Command{
		Use:   "get-contexts",
		Short: "List the contexts of the config file; * marks the current one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(a.configFile())
			if err != nil {
				return err
			}
			if len(cfg.Contexts) == 0 {
				fmt.Fprintf(a.errOut, "No contexts found in %s.\n", a.configFile())
				return nil
			}
			if a.outputKind() == "name" {
				for _, c := range cfg.Contexts {
					fmt.Fprintln(a.out, c.Name)
				}
				return nil
			}
			tw := &table{Writer: tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0), noHeaders: a.noHeaders}
			header(tw, "CURRENT", "NAME", "SERVER", "AUTH", "CA")
			for _, c := range cfg.Contexts {
				cur := ""
				if c.Name == cfg.CurrentContext {
					cur = "*"
				}
				auth := "-"
				switch {
				case c.Token != "":
					auth = "token"
				case c.TokenFile != "":
					auth = "token-file " + c.TokenFile
				case c.Cert != "":
					auth = "cert " + c.Cert
				}
				row(tw, cur, c.Name, c.Server, auth, orDash(c.CA))
			}
			return tw.Flush()
		},
	}
	current := &cobra.Command{
		Use:   "current-context",
		Short: "Print the current context's name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(a.configFile())
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return &exitErr{code: exitNotFound, err: fmt.Errorf("no current context in %s (config use-context NAME sets one)", a.configFile())}
			}
			fmt.Fprintln(a.out, cfg.CurrentContext)
			return nil
		},
	}
	del := &cobra.Command{
		Use:               "delete-context NAME",
		Short:             "Remove a context from the config file (the current one too: then none is current)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configFile()
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(cfg.Contexts, func(c contextConfig) bool { return c.Name == args[0] })
			if i < 0 {
				return &exitErr{code: exitNotFound, err: fmt.Errorf("context %q is not in %s", args[0], path)}
			}
			cfg.Contexts = slices.Delete(cfg.Contexts, i, i+1)
			msg := fmt.Sprintf("deleted context %q from %s", args[0], path)
			if cfg.CurrentContext == args[0] {
				cfg.CurrentContext = ""
				msg += "; no context is current now"
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintln(a.out, msg)
			return nil
		},
	}
	use.ValidArgsFunction = a.completeContexts
	cmd.AddCommand(set, use, view, getContexts, current, del)
	return cmd
}
