package depsprobe

import (
	_ "github.com/miekg/dns"
	_ "github.com/patrickmn/go-cache"
	_ "github.com/spf13/viper"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/api/discovery/v1"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "sigs.k8s.io/yaml"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "sigs.k8s.io/knftables"
	_ "golang.org/x/sys/unix"
)
