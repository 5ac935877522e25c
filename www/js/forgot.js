// The forgotten password: POST /api/auth/forget_password with this site's
// reset page as callback_url (the emailed link is reset.html?token=…).

import {
	$, api, busy, errorText, firstError, loadTexts, params, rememberDomain, rememberedDomain, say,
	t,
} from './common.js';

async function send(ev) {
	ev.preventDefault();
	const msg = $('#forgot-message');
	const domain = $('#domain').value.trim().toLowerCase();
	const username = $('#username').value.trim();
	if (!domain || !username) {
		say(msg, t('field.required'));
		(domain ? $('#username') : $('#domain')).focus();
		return;
	}
	const callback_url = new URL('reset.html', location.href).href;
	const r = await busy(ev.target, () => api('POST', '/api/auth/forget_password',
	    { domain, username, callback_url }));
	if (r.status === 200) {
		rememberDomain(domain);
		say(msg, t('forgot.sent'), 'info');
	} else if (r.status === 400 && (firstError(r).detail || {}).field === 'callback_url') {
		say(msg, t('forgot.callback'));
	} else {
		say(msg, errorText(r));
	}
	msg.focus();
}

async function main() {
	await loadTexts();
	const domain = (params(location.search).get('domain') || rememberedDomain()).trim();
	$('#domain').value = domain;
	if (domain)
		$('#signin-link').href = `./?domain=${encodeURIComponent(domain)}`;
	$('#forgot-form').addEventListener('submit', send);
	(domain ? $('#username') : $('#domain')).focus();
}

main();
