package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// the manifest uses; decoded strictly, so a misspelt field is an error.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port        string `json:"port"`
			Path        string `json:"path"`
			Interval    string `json:"interval"`
			Relabelings []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
			} `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// kubeObjects is what a kustomization renders to, each object decoded
// strictly into its Kubernetes type.
type kubeObjects struct {
	kinds          []string
	namespace      corev1.Namespace
	config         corev1.ConfigMap
	daemonSet      appsv1.DaemonSet
	service        corev1.Service
	serviceMonitor *serviceMonitor
}

// renderKustomization builds dir as `kubectl apply -k` does (kustomize's
// own library, so no kubectl is needed) and decodes every object.
func renderKustomization(t *testing.T, dir string) kubeObjects {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs kubeObjects
	for _, r := range resources.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch r.GetKind() {
		case "Namespace":
			into = &objs.namespace
		case "ConfigMap":
			into = &objs.config
		case "DaemonSet":
			into = &objs.daemonSet
		case "Service":
			into = &objs.service
		case "ServiceMonitor":
			objs.serviceMonitor = &serviceMonitor{}
			into = objs.serviceMonitor
		default:
			t.Fatalf("%s: unexpected %s", dir, r.GetKind())
		}
		if err := k8syaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		objs.kinds = append(objs.kinds, r.GetKind())
	}
	slices.Sort(objs.kinds)
	return objs
}

// TestDeployKubernetes renders the Kustomize base and the Prometheus
// Operator overlay, decodes every object into its Kubernetes type, and
// checks that they fit together as shipped: the image `make image` builds,
// the generated ConfigMap mounted and its config valid with root_path at
// the node's root mount, the store on a volume the non-root pod can write,
// ICMP through the pod's ping_group_range, probes on /-/healthy and
// /-/ready, and the ServiceMonitor selecting the Service's port. Then it
// runs the config's node and ICMP checks in the image the way the pod
// does (TestDeployKubernetes/pod). Applying it to a cluster is not done
// here: there is none.
func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	base := renderKustomization(t, "../../examples/deploy/kubernetes/base")
	if got := strings.Join(base.kinds, ","); got != "ConfigMap,DaemonSet,Namespace,Service" {
		t.Fatalf("base kinds %s", got)
	}
	ds, pod := base.daemonSet, base.daemonSet.Spec.Template.Spec
	for _, ns := range []string{base.config.Namespace, ds.Namespace, base.service.Namespace} {
		if ns != base.namespace.Name || ns != "vigil" {
			t.Errorf("object in namespace %q, want vigil", ns)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("containers: %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "vigil:latest" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want vigil:latest IfNotPresent, the image make image builds", c.Image, c.ImagePullPolicy)
	}

	// Who it runs as, and what it may do.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 ||
		psc.FSGroup == nil || *psc.FSGroup != 65534 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want non-root 65534 with fsGroup 65534 and RuntimeDefault seccomp", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want a read-only root, no escalation, every capability dropped", sc)
	}
	pingGroups := ""
	for _, s := range psc.Sysctls {
		if s.Name == "net.ipv4.ping_group_range" {
			pingGroups = s.Value
		}
	}
	var lo, hi int64 = -1, -1
	if f := strings.Fields(pingGroups); len(f) == 2 {
		lo, _ = strconv.ParseInt(f[0], 10, 64)
		hi, _ = strconv.ParseInt(f[1], 10, 64)
	}
	if lo < 0 || lo > 65534 || hi < 65534 {
		t.Errorf("ping_group_range %q does not cover the pod's group 65534", pingGroups)
	}
	if pod.HostNetwork {
		t.Error("hostNetwork: pod sysctls of the network namespace are refused with it")
	}

	// Probes and the port.
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("probes: liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 9877 ||
		c.LivenessProbe.HTTPGet.Port.String() != "http" || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
		t.Errorf("ports %+v: want http 9877, probed by name", c.Ports)
	}

	// Volumes: each mount's source, the config from the generated ConfigMap.
	args := strings.Join(c.Args, " ")
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/etc/vigil"]; !ok || volumes[m.Name].ConfigMap == nil || volumes[m.Name].ConfigMap.Name != base.config.Name ||
		!strings.Contains(args, "--config.file=/etc/vigil/vigil.yml") {
		t.Errorf("the config: mount %+v, args %s; want the generated ConfigMap %s at /etc/vigil", m, args, base.config.Name)
	}
	if m, ok := mounts["/data"]; !ok || m.ReadOnly || volumes[m.Name].EmptyDir == nil || !strings.Contains(args, "--storage.path=/data/vigil.db") {
		t.Errorf("the store: mount %+v, args %s; want --storage.path on a writable emptyDir", m, args)
	}
	hostMount, ok := mounts["/host"]
	if hp := volumes[hostMount.Name].HostPath; !ok || !hostMount.ReadOnly || hp == nil || hp.Path != "/" {
		t.Errorf("the node's root: mount %+v volume %+v; want / read-only at /host", hostMount, volumes[hostMount.Name])
	}

	// The config: valid, and its host check looks at the node through /host.
	cfgDir := t.TempDir()
	cfgPath := writeConfig(t, cfgDir, "vigil.yml", base.config.Data["vigil.yml"])
	if out, errOut, code := run(t, "check-config", cfgPath); code != 0 {
		t.Errorf("the ConfigMap's vigil.yml: %d\n%s%s", code, out, errOut)
	}
	var cfg struct {
		Checks []struct {
			Name, Type string
			Host       map[string]any
		}
	}
	if err := yaml.Unmarshal([]byte(base.config.Data["vigil.yml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	hostChecks := 0
	for _, ch := range cfg.Checks {
		if ch.Type != "host" {
			continue
		}
		hostChecks++
		if ch.Host["root_path"] != hostMount.MountPath || ch.Host["proc_path"] != hostMount.MountPath+"/proc" || ch.Host["sys_path"] != hostMount.MountPath+"/sys" {
			t.Errorf("host check %s: %v; want root_path, proc_path and sys_path under %s", ch.Name, ch.Host, hostMount.MountPath)
		}
	}
	if hostChecks == 0 {
		t.Error("no host check in the ConfigMap")
	}

	// The Service reaches the pods; the operator overlay adds a
	// ServiceMonitor that selects the Service and its port.
	for k, v := range base.service.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %v does not select the pods %v", base.service.Spec.Selector, ds.Spec.Template.Labels)
		}
	}
	op := renderKustomization(t, "../../examples/deploy/kubernetes/prometheus-operator")
	if got := strings.Join(op.kinds, ","); got != "ConfigMap,DaemonSet,Namespace,Service,ServiceMonitor" {
		t.Fatalf("prometheus-operator kinds %s", got)
	}
	sm := op.serviceMonitor
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Metadata.Namespace != "vigil" || len(sm.Spec.Endpoints) != 1 ||
		sm.Spec.Endpoints[0].Port != op.service.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor %+v", sm)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if op.service.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, op.service.Labels)
		}
	}

	// The pod's conditions in Docker: the image as its user, read-only,
	// every capability dropped, no new privileges, the same sysctl, the
	// machine's root at /host and the ConfigMap's config, with the ICMP
	// check aimed at loopback (the tax platform is not reachable here).
	t.Run("pod", func(t *testing.T) {
		docker, image := needImage(t)
		local := strings.ReplaceAll(base.config.Data["vigil.yml"], "icmp: {host: tax-gateway.example.gov.cn}", "icmp: {host: 127.0.0.1, traceroute_on_failure: false}")
		local = strings.ReplaceAll(local, "disk_free_min: 0.1", "disk_free_min: 0.01") // this machine's disks are not the subject
		local = strings.ReplaceAll(local, "cpu_max: 0.9", "cpu_max: 1")                // nor its load
		writeConfig(t, cfgDir, "vigil.yml", local)
		os.Chmod(cfgDir, 0o755)
		var ping string
		for _, ch := range cfg.Checks {
			if ch.Type == "icmp" {
				ping = ch.Name
			}
		}
		cmd := exec.Command(docker, "run", "--rm", "--user", "65534:65534", "--read-only", "--cap-drop", "ALL",
			"--security-opt", "no-new-privileges", "--sysctl", "net.ipv4.ping_group_range="+pingGroups,
			"-v", "/:/host:ro", "-v", cfgDir+":/etc/vigil:ro", "--tmpfs", "/data", image,
			"once", "--config.file=/etc/vigil/vigil.yml", "--check=node", "--check="+ping)
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("filesystem_free_min=")) {
			t.Errorf("node and ICMP checks as the pod runs them: %v\n%s", err, out)
		}
		t.Logf("%s", out)
	})
}
