package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPhoneReceiverErrors: the SMS and voice integrations' mistakes are
// reported at their file:line:col like any other receiver's; an AccessKey
// written in the file is refused.
func TestPhoneReceiverErrors(t *testing.T) {
	t.Setenv("VIGIL_TEST_AK_ID", "LTAI5tVigilTestKeyId00001")
	const head = "notify:\n  route: {receiver: r}\n  receivers:\n    - name: r\n"
	tests := []struct {
		name, body string
		want       []string
	}{
		{"inline secret", `      aliyun_sms_configs:
        - access_key_id: ${VIGIL_TEST_AK_ID}
          access_key_secret: LiteralSecret0001
          phone_numbers: ['13800001111']
          sign_name: s
          template_code: SMS_1
`, []string{
			`x.yml:7:11: notify.receivers[0].aliyun_sms_configs[0].access_key_secret: set exactly one of access_key_secret and access_key_secret_file`,
			`x.yml:7:30: notify.receivers[0].aliyun_sms_configs[0].access_key_secret: secrets cannot be written inline: use an environment reference like ${NAME} or the matching _file field`,
		}},
		{"aliyun sms entry", `      aliyun_sms_configs:
        - sign_name: s
          phone_numbers: ['13800001111', '138-00']
          template_param: {alert: '{{ .Nope }}'}
          phone_max_per_hour: -1
          phone_min_interval: soon
`, []string{
			`x.yml:6:11: notify.receivers[0].aliyun_sms_configs[0].access_key_id: set exactly one of access_key_id and access_key_id_file`,
			`x.yml:6:11: notify.receivers[0].aliyun_sms_configs[0].access_key_secret: set exactly one of access_key_secret and access_key_secret_file`,
			`x.yml:6:11: notify.receivers[0].aliyun_sms_configs[0].template_code: the approved template's code (SMS_…) is required`,
			`x.yml:7:42: notify.receivers[0].aliyun_sms_configs[0].phone_numbers[1]: "138-00" is not a phone number (digits, optionally +country code)`,
			`x.yml:8:28: notify.receivers[0].aliyun_sms_configs[0].template_param.alert: cannot render a sample alert group: render body: template: body:1:3: executing "body" at <.Nope>: can't evaluate field Nope in type *notify.Data`,
			`x.yml:9:11: notify.receivers[0].aliyun_sms_configs[0].phone_max_per_hour: must not be negative (0 disables the cap)`,
			`x.yml:10:31: notify.receivers[0].aliyun_sms_configs[0].phone_min_interval: not a valid duration string: "soon"`,
		}},
		{"aliyun voice entry", `      aliyun_voice_configs:
        - access_key_id: ${VIGIL_TEST_AK_ID}
          access_key_secret_file: /run/secrets/ak
          called_numbers: ['13800001111']
          tts_code: TTS_1
          volume: 200
          ttscode: x
`, []string{
			`x.yml:10:11: notify.receivers[0].aliyun_voice_configs[0].volume: must be 0 to 100`,
			`x.yml:11:11: notify.receivers[0].aliyun_voice_configs[0].ttscode: unknown field (did you mean "tts_code"?)`,
		}},
		{"tencent sms entry", `      tencent_sms_configs:
        - secret_id: ${VIGIL_TEST_AK_ID}
          secret_key: ${VIGIL_TEST_UNSET}
          region: ''
          phone_numbers: ['+8613800001111']
          sms_sdk_app_id: '1400006666'
          sign_name: s
          template_id: '1'
          template_params: ['{{ .Status }}', '{{ .Nope }}']
`, []string{
			`x.yml:7:11: notify.receivers[0].tencent_sms_configs[0].secret_key: set exactly one of secret_key and secret_key_file`,
			`x.yml:7:23: notify.receivers[0].tencent_sms_configs[0].secret_key: environment variable VIGIL_TEST_UNSET is not set`,
			`x.yml:8:11: notify.receivers[0].tencent_sms_configs[0].region: the region (X-TC-Region), such as ap-guangzhou, is required`,
			`x.yml:13:46: notify.receivers[0].tencent_sms_configs[0].template_params[1]: cannot render a sample alert group: render body: template: body:1:3: executing "body" at <.Nope>: can't evaluate field Nope in type *notify.Data`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yml", []byte(head+tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
			if strings.Contains(err.Error(), "LiteralSecret0001") || strings.Contains(err.Error(), "LTAI5tVigilTestKeyId00001") {
				t.Errorf("an error shows a credential: %v", err)
			}
		})
	}
}

// TestPhoneReceiverSecrets: SecretValues finds the SMS and voice
// credentials, from the environment and from their files, so step output
// is redacted of them too.
func TestPhoneReceiverSecrets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VIGIL_TEST_AK_ID", "LTAI5tVigilTestKeyId00001")
	t.Setenv("VIGIL_TEST_TC_ID", "AKIDvigilTestSecretId0000000000000001")
	akFile := filepath.Join(dir, "ak")
	os.WriteFile(akFile, []byte("VigilTestAccessKeySecret0000000001\n"), 0o600)
	tcFile := filepath.Join(dir, "tc")
	os.WriteFile(tcFile, []byte("vigilTestSecretKey00000000000001\n"), 0o600)
	body := `notify:
  route: {receiver: r}
  receivers:
    - name: r
      aliyun_sms_configs:
        - {access_key_id: '${VIGIL_TEST_AK_ID}', access_key_secret_file: ` + akFile + `, phone_numbers: ['13800001111'], sign_name: s, template_code: SMS_1}
      aliyun_voice_configs:
        - {access_key_id: '${VIGIL_TEST_AK_ID}', access_key_secret_file: ` + akFile + `, called_numbers: ['13800001111'], tts_code: TTS_1}
      tencent_sms_configs:
        - {secret_id: '${VIGIL_TEST_TC_ID}', secret_key_file: ` + tcFile + `, phone_numbers: ['+8613800001111'], sms_sdk_app_id: '1400006666', sign_name: s, template_id: '1'}
`
	cfg, err := Parse("s.yml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := SecretValues(cfg)
	for _, want := range []string{"LTAI5tVigilTestKeyId00001", "VigilTestAccessKeySecret0000000001", "AKIDvigilTestSecretId0000000000000001", "vigilTestSecretKey00000000000001"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretValues lacks %q: %q", want, got)
		}
	}
}
