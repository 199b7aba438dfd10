package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/testenv"
)

// debianImage is a minimal Debian root (debootstrap --variant=minbase,
// plus libcap2-bin for setcap) imported into Docker once and kept: the
// clean root each package test installs into. Nothing can be pulled from
// a registry here, but Debian's mirror answers. Its name holds no "vigil",
// so `docker images | grep vigil` finds only vigil's own image.
const debianImage = "localtest/debian-minbase:bookworm"

func needDebianImage(t *testing.T, docker string) {
	t.Helper()
	if exec.Command(docker, "image", "inspect", debianImage).Run() == nil {
		return
	}
	debootstrap := testenv.NeedBinary(t, "debootstrap", "debootstrap")
	testenv.NeedRoot(t, "debootstrap builds the clean Debian root the .deb is installed into")
	mirror := os.Getenv("VIGIL_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	dir := t.TempDir()
	out, err := exec.Command(debootstrap, "--variant=minbase", "--include=libcap2-bin", "bookworm", dir, mirror).CombinedOutput()
	if err != nil {
		testenv.Missingf(t, "a Debian root from debootstrap", "debootstrap bookworm from %s: %v: %s", mirror, err, lastLine(out))
	}
	imp := exec.Command("sh", "-c", `tar -C "$1" -c . | "$2" import - "$3"`, "sh", dir, docker, debianImage)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
}

// TestDeployPackage builds the packages with `make package`, installs the
// .deb with dpkg -i into a clean Debian root (a container of the image
// above) and checks what the postinstall did, the completions and the man
// page, and that the installed binary accepts the installed config; the .rpm's files and scripts are
// read with rpm -qp.
func TestDeployPackage(t *testing.T) {
	t.Parallel()
	root, _ := filepath.Abs("../..")
	makeTarget(t, root, "package")
	debs, _ := filepath.Glob(filepath.Join(root, "bin", "vigil_*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(root, "bin", "vigil-*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package left %v and %v in bin/, want one of each", debs, rpms)
	}
	// A version dpkg and rpm order correctly: a release's number, or 0.0.0~git.REVISION
	// before the first tag (a revision may begin with digits: 252e7d0 is no version).
	if name := filepath.Base(debs[0]); !regexp.MustCompile(`^vigil_\d+\.\d+\.\d+[0-9a-z.~+]*_[a-z0-9]+\.deb$`).MatchString(name) {
		t.Errorf("package name %s", name)
	}

	t.Run("deb", func(t *testing.T) {
		docker := needDocker(t)
		needDebianImage(t, docker)
		script := `set -e
dpkg -i /tmp/vigil.deb
vigil check-config /etc/vigil/vigil.yml
echo "user: $(id vigil)"
echo "state: $(stat -c '%U:%G %a' /var/lib/vigil)"
echo "caps: $(getcap /usr/bin/vigil)"
echo "conffiles: $(cat /var/lib/dpkg/info/vigil.conffiles)"
echo "unit: $(ls /usr/lib/systemd/system/vigil.service)"
echo "bash: $(bash -c '. /usr/share/bash-completion/completions/vigil && complete -p vigil')"
echo "zsh: $(head -n1 /usr/share/zsh/vendor-completions/_vigil)"
echo "fish: $(ls /usr/share/fish/vendor_completions.d/vigil.fish)"
echo "man: $(zcat /usr/share/man/man1/vigil.1.gz | head -n1 | cut -d' ' -f1-2)"
dpkg -i /tmp/vigil.deb >/dev/null   # again, as an upgrade does
dpkg -r vigil >/dev/null
echo after remove: $(ls -d /etc/vigil/vigil.yml /var/lib/vigil)`
		out, err := exec.Command(docker, "run", "--rm", "--network", "none", "-v", debs[0]+":/tmp/vigil.deb:ro",
			debianImage, "sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg -i in a clean Debian root: %v\n%s", err, out)
		}
		for _, want := range []string{
			"/etc/vigil/vigil.yml: OK: 1 check(s)",
			"user: uid=", "(vigil) gid=", "state: vigil:vigil 750",
			"caps: /usr/bin/vigil cap_net_raw=ep",
			"conffiles: /etc/vigil/vigil.yml",
			"unit: /usr/lib/systemd/system/vigil.service",
			"_vigil_bash_autocomplete vigil\n", "zsh: #compdef vigil", "fish: /usr/share/fish/vendor_completions.d/vigil.fish", "man: .TH VIGIL",
			"after remove: /etc/vigil/vigil.yml /var/lib/vigil\n", // the config and the store stay until purge
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})

	t.Run("rpm", func(t *testing.T) {
		rpm, err := exec.LookPath("rpm")
		if err != nil {
			testenv.Missing(t, "rpm", "not installed (apt-get install rpm); the .rpm is built but not read")
		}
		out, err := exec.Command(rpm, "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILENAMES}\n]", rpms[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qp: %v\n%s", err, out)
		}
		for _, want := range []string{"cn -rw-r--r-- /etc/vigil/vigil.yml", " -rwxr-xr-x /usr/bin/vigil", " -rw-r--r-- /usr/lib/systemd/system/vigil.service",
			"/usr/share/bash-completion/completions/vigil", "/usr/share/zsh/site-functions/_vigil", "/usr/share/fish/vendor_completions.d/vigil.fish", "/usr/share/man/man1/vigil.1.gz"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("no %q in the rpm's files:\n%s", want, out)
			}
		}
		out, err = exec.Command(rpm, "-qp", "--scripts", rpms[0]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "useradd --system") || !strings.Contains(string(out), "setcap cap_net_raw+ep /usr/bin/vigil") {
			t.Errorf("rpm scripts: %v\n%s", err, out)
		}
	})
}
