package cli

import (
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
)

// manTemplate renders vigil(1) from the command model. kingpin's own
// --help-man puts the multi-line build version into .TH and passes help
// text through unescaped (em dashes, lines starting with a dot), which
// groff warns about; this one escapes every text it prints (roff) and keeps
// the help's layout, examples included (.nf).
const manTemplate = `{{define "flags" -}}
{{range . -}}{{if not .Hidden -}}
.TP
\fB{{if .Short}}\-{{.Short|printf "%c"}}, {{end}}\-\-{{.Name|roff}}{{if not .IsBoolFlag}}={{.FormatPlaceHolder|roff}}{{end}}\fR
{{.Help|roff}}
{{end}}{{end -}}
{{end -}}
.TH VIGIL 1 "{{date}}" "vigil {{ver}}" "vigil manual"
.SH NAME
vigil \- health\-probe and observability agent for e\-invoice platforms
.SH SYNOPSIS
.B vigil
[\fIflags\fR] \fIcommand\fR [\fIargs\fR ...]
.SH DESCRIPTION
.nf
{{.App.Help|roff}}
.fi
.SH OPTIONS
{{template "flags" .App.Flags -}}
.SH COMMANDS
{{range .App.FlattenedCommands}}{{if not .Hidden -}}
.SS "{{.FullCommand|roff}}{{range .Args}}{{if not .Hidden}} {{if not .Required}}[{{end}}{{if .PlaceHolder}}{{.PlaceHolder|roff}}{{else}}<{{.Name|roff}}>{{end}}{{if not .Required}}]{{end}}{{end}}{{end}}"
.nf
{{.Help|roff}}
.fi
{{template "flags" .Flags -}}
{{end}}{{end -}}
.SH FILES
.TP
.I /etc/vigil/vigil.yml
the configuration (\fB\-\-config.file\fR)
.TP
.I /var/lib/vigil/vigil.db
the store of the packaged service (\fB\-\-storage.path\fR)
.SH SEE ALSO
.BR promtool (1),
.BR prometheus (1)
`

// roff escapes text for a man page: backslashes, a dot or quote at the
// start of a line (a request otherwise), hyphens, and every non-ASCII rune
// as \[uXXXX] so the page renders without preconv.
func roff(s string) string {
	var b strings.Builder
	startOfLine := true
	for _, r := range s {
		switch {
		case startOfLine && (r == '.' || r == '\''):
			b.WriteString(`\&`)
			b.WriteRune(r)
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r == '"':
			b.WriteString(`\(dq`)
		case r > unicode.MaxASCII:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
		startOfLine = r == '\n'
	}
	return b.String()
}

// writeManPage writes vigil(1) for app.
func writeManPage(app *kingpin.Application, w io.Writer) error {
	ctx, err := app.ParseContext(nil)
	if err != nil {
		return err
	}
	ver := version.Version
	if ver == "" {
		ver = "dev"
	}
	app.UsageFuncs(template.FuncMap{
		"roff": roff,
		"ver":  func() string { return roff(ver) },
		"date": func() string { return buildDate().Format("2006-01-02") },
	})
	app.UsageWriter(w)
	return app.UsageForContextWithTemplate(ctx, 0, manTemplate)
}

// buildDate is the binary's build date (version.BuildDate, 20060102-15:04:05)
// or, for a development build, today: a man page has a date.
func buildDate() time.Time {
	if t, err := time.Parse("20060102-15:04:05", version.BuildDate); err == nil {
		return t
	}
	return time.Now()
}

// fishCompletion completes vigil in fish the way kingpin's bash and zsh
// scripts do: by asking `vigil --completion-bash` for the candidates of
// the words so far.
const fishCompletion = `# fish completion for vigil (vigil completion fish)
function __vigil_complete
    set -l words (commandline -opc)
    set -e words[1]
    vigil --completion-bash $words 2>/dev/null
end
complete -c vigil -f -a '(__vigil_complete)'
`

// writeCompletion writes the completion script of shell.
func writeCompletion(app *kingpin.Application, shell string, w io.Writer) error {
	if shell == "fish" {
		_, err := io.WriteString(w, fishCompletion)
		return err
	}
	tmpl := kingpin.BashCompletionTemplate
	if shell == "zsh" {
		tmpl = kingpin.ZshCompletionTemplate
	}
	ctx, err := app.ParseContext(nil)
	if err != nil {
		return err
	}
	app.UsageWriter(w)
	return app.UsageForContextWithTemplate(ctx, 0, tmpl)
}
