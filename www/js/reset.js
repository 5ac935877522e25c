// The page of the emailed reset link (reset.html?token=…): takes the token
// out of the address bar and history first, then asks for the new password
// twice and calls POST /api/auth/reset_password. nginx serves this page with
// Referrer-Policy: no-referrer (and without an access log line), so the token
// leaves the browser only in that request's body.

import { $, api, busy, errorText, firstError, loadTexts, say, t } from './common.js';

const token = new URLSearchParams(location.search).get('token');
history.replaceState(null, '', location.pathname);

function ended(text) {
	say($('#reset-message'), text);
	$('#reset-form').hidden = true;
	$('#new-link').hidden = false;
	$('#reset-message').focus();
}

// "must be 8-128 characters" (the server's rule): the policy in words.
function showRule(rule) {
	const m = /(\d+)-(\d+) characters/.exec(rule || '');
	if (m)
		$('#policy').textContent = t('reset.policy.server', { min: m[1], max: m[2] });
	return t('reset.rule', { rule });
}

async function reset(ev) {
	ev.preventDefault();
	const msg = $('#reset-message');
	const pw = $('#new-password').value;
	const again = $('#confirm-password').value;
	if (!pw) {
		say(msg, t('field.required'));
		$('#new-password').focus();
		return;
	}
	if (pw !== again) {
		say(msg, t('reset.mismatch'));
		$('#confirm-password').value = '';
		$('#confirm-password').focus();
		return;
	}
	const r = await busy(ev.target, () => api('POST', '/api/auth/reset_password',
	    { token, new_password: pw }));
	if (r.status === 200) {
		$('#new-password').value = '';
		$('#confirm-password').value = '';
		$('#reset-form').hidden = true;
		say(msg, t('reset.done'), 'info');
		const link = $('#signin-link');
		link.textContent = t('action.go_signin');
		link.classList.add('button');
		link.focus();
		return;
	}
	const e = firstError(r);
	if (r.status === 401) {
		ended(t('reset.invalid'));
	} else if (r.status === 400 && e.detail && e.detail.field === 'new_password') {
		say(msg, showRule(e.detail.rule));
		$('#new-password').focus();
	} else {
		say(msg, errorText(r));
		msg.focus();
	}
}

async function main() {
	await loadTexts();
	if (!token) {
		ended(t('reset.missing'));
		return;
	}
	$('#reset-form').addEventListener('submit', reset);
	$('#new-password').focus();
}

main();
