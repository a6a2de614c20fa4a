package main

import (
	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/server"
)

// dashboardFlags are serve's flags of the operator dashboard (/dashboard).
type dashboardFlags struct {
	off          bool
	origin       string
	secureCookie bool
}

func (f *dashboardFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.off, "no-dashboard", false, "do not serve the operator dashboard at /dashboard")
	fs.StringVar(&f.origin, "dashboard-origin", "",
		"the dashboard's public origin (https://ops.example.com) when a proxy in front changes scheme or host; sign-ins from any other origin are refused")
	fs.BoolVar(&f.secureCookie, "dashboard-secure-cookie", false,
		"mark the dashboard's session cookie Secure (set it when a TLS-terminating proxy is in front)")
}

func (f *dashboardFlags) apply(o *server.Options) {
	o.DisableDashboard, o.DashboardOrigin, o.DashboardSecureCookie = f.off, f.origin, f.secureCookie
}
