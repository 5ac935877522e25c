// The sign-in page and the portal landing page (portal_url): password sign
// in (POST /api/login), the two-factor code (send_otp / verify_otp), the
// signed-in status (GET /api/login) and sign out (POST /api/logout); the
// Microsoft button posts a form to /api/login/by_microsoft, whose callback
// comes back here with the session cookie set, with #error=… or with
// #two_factor_enabled=true&token=….

import {
	$, api, busy, errorText, firstError, loadTexts, params, rememberDomain,
	rememberedDomain, say, t, text,
} from './common.js';

const OTP_MAX_ATTEMPTS = 5;		// the default of otp_max_attempts

// The two-factor token of the sign-in in progress: in memory only.
let twoFactorToken = null;
let wrongCodes = 0;
let waitTimer = null;

function show(view) {
	for (const v of ['signin', 'code', 'account'])
		$(`#view-${v}`).hidden = v !== view;
	document.title = t(`title.${view}`);
}

// The fragment the Microsoft callback adds to portal_url, read and removed
// from the address bar and history at once (it may carry a token).
function takeFragment() {
	const frag = params(location.hash);
	if (location.hash)
		history.replaceState(null, '', location.pathname + location.search);
	return frag;
}

function landingError(frag) {
	const code = frag.get('error');
	const known = ['access_denied', 'temporarily_unavailable', 'server_error', 'invalid_request'];
	let words = t(known.includes(code) ? `landing.error.${code}` : 'landing.error.other');
	const desc = frag.get('error_description');
	if (desc)
		words += ' ' + t('landing.error.detail', { detail: desc });
	const el = $('#landing-message');
	say(el, words);
	return el;
}

/* tenant: name, avatar and the Microsoft button from GET /api/info?domain= */

let infoSeq = 0;

async function lookUpTenant(domain) {
	const seq = ++infoSeq;
	const status = $('#tenant-status');
	$('#microsoft').hidden = true;
	$('#tenant').hidden = true;
	status.textContent = '';
	if (!domain)
		return;
	status.textContent = t('tenant.loading', { domain });
	const r = await api('GET', `/api/info?domain=${encodeURIComponent(domain)}`);
	if (seq !== infoSeq)
		return;		// the field changed meanwhile
	status.textContent = '';
	if (r.status === 404 || r.status === 400) {
		status.textContent = t('tenant.unknown', { domain });
		return;
	}
	if (r.status !== 200 || !r.json)
		return;
	const info = r.json;
	$('#tenant-name').textContent = info.name || info.domain || domain;
	const img = $('#tenant-avatar');
	// the tenant's avatar, or this site's neutral one
	img.src = info.avatar_url || 'img/pbx.svg';
	img.alt = t('tenant.avatar', { name: info.name || domain });
	img.hidden = false;
	$('#tenant').hidden = false;
	$('#microsoft-domain').value = domain;
	$('#microsoft').hidden = !info.enable_ms365_integration;
}

function domainValue() {
	return $('#domain').value.trim().toLowerCase();
}

/* the signed-in status */

async function showAccount() {
	const r = await api('GET', '/api/login');
	if (r.status !== 200 || !r.json)
		return false;
	const role = r.json.role || '';
	$('#account-role').textContent = text(`role.${role}`) || role;
	show('account');
	$('#account-title').focus();
	return true;
}

function showSignIn(message, kind) {
	show('signin');
	say($('#signin-message'), message || '', kind);
	const first = $('#domain').value ? $('#username') : $('#domain');
	first.focus();
}

/* password sign-in */

async function signIn(ev) {
	ev.preventDefault();
	const form = ev.target;
	const msg = $('#signin-message');
	const domain = domainValue();
	const username = $('#username').value.trim();
	const password = $('#password').value;
	if (!username || !password) {
		say(msg, t('field.required'));
		(username ? $('#password') : $('#username')).focus();
		return;
	}
	say($('#landing-message'), '');
	const body = { username, password };
	if (domain)
		body.domain = domain;
	const r = await busy(form, () => api('POST', '/api/login', body));
	$('#password').value = '';
	if (r.status === 200 && r.json && r.json.two_factor_enabled) {
		rememberDomain(domain);
		startCode(r.json.token);
		return;
	}
	if (r.status === 200) {
		rememberDomain(domain);
		say(msg, '');
		if (!await showAccount())
			showSignIn(t('error.server'));
		return;
	}
	let words;
	if (r.status === 429 && r.retryAfter > 1) {
		// the account or address is blocked (nginx's own 429 says 1 second)
		const minutes = Math.ceil(r.retryAfter / 60);
		words = minutes > 1 ? t('signin.throttled', { minutes }) : t('signin.throttled.one');
	} else {
		words = errorText(r);
	}
	say(msg, words);
	$('#password').focus();
}

/* the two-factor code */

function startCode(token) {
	twoFactorToken = token;
	wrongCodes = 0;
	show('code');
	$('#code').value = '';
	say($('#code-message'), t('code.sending'), 'info');
	$('#code-title').focus();
	sendCode(false);
}

function waitFor(seconds) {
	const btn = $('#code-resend');
	const wait = $('#code-wait');
	clearInterval(waitTimer);
	let left = seconds;
	btn.disabled = true;
	wait.textContent = t('code.wait', { seconds: left });
	waitTimer = setInterval(() => {
		left -= 1;
		if (left > 0) {
			wait.textContent = t('code.wait', { seconds: left });
			return;
		}
		clearInterval(waitTimer);
		wait.textContent = '';
		btn.disabled = false;
	}, 1000);
}

function codeEnded(words) {
	twoFactorToken = null;
	clearInterval(waitTimer);
	$('#code-wait').textContent = '';
	$('#code-resend').disabled = false;
	showSignIn(words);
}

async function sendCode(again) {
	const msg = $('#code-message');
	const r = await api('POST', '/api/auth/send_otp', { token: twoFactorToken });
	if (r.status === 200) {
		say(msg, t(again ? 'code.resent' : 'code.sent'), 'info');
		$('#code').focus();
	} else if (r.status === 429 && r.retryAfter > 0) {
		say(msg, '');
		waitFor(r.retryAfter);
		$('#code').focus();
	} else if (r.status === 401) {
		codeEnded(t('code.voided'));
	} else if (r.status === 403) {
		codeEnded(t('code.no_email'));
	} else {
		say(msg, errorText(r));
	}
}

async function verifyCode(ev) {
	ev.preventDefault();
	const msg = $('#code-message');
	const code = $('#code').value.replace(/\s+/g, '');
	if (!/^[0-9]{6}$/.test(code)) {
		say(msg, t('code.format'));
		$('#code').focus();
		return;
	}
	const r = await busy(ev.target, () => api('POST', '/api/auth/verify_otp',
	    { token: twoFactorToken, code }));
	$('#code').value = '';
	if (r.status === 200) {
		twoFactorToken = null;
		clearInterval(waitTimer);
		if (!await showAccount())
			showSignIn(t('error.server'));
		return;
	}
	const e = firstError(r);
	if (r.status === 401 && e.code === 'INVALID_TOKEN') {
		codeEnded(t('code.voided'));
		return;
	}
	if (r.status === 401) {
		wrongCodes += 1;
		const tries = Math.max(OTP_MAX_ATTEMPTS - wrongCodes, 0);
		say(msg, tries === 1 ? t('code.wrong.one') : t('code.wrong', { tries }));
	} else {
		say(msg, errorText(r));
	}
	$('#code').focus();
}

/* sign out */

async function signOut() {
	const r = await api('POST', '/api/logout');
	if (r.status === 204 || r.status === 200) {
		showSignIn(t('signout.done'), 'info');
		return;
	}
	say($('#landing-message'), errorText(r));
}

/* start */

async function main() {
	const frag = takeFragment();
	await loadTexts();
	const query = params(location.search);
	const domain = (query.get('domain') || rememberedDomain()).trim().toLowerCase();
	$('#domain').value = domain;
	$('#forgot-link').href = domain ? `forgot.html?domain=${encodeURIComponent(domain)}` : 'forgot.html';

	$('#signin-form').addEventListener('submit', signIn);
	$('#code-form').addEventListener('submit', verifyCode);
	$('#code-resend').addEventListener('click', () => sendCode(true));
	$('#code-cancel').addEventListener('click', () => codeEnded(''));
	$('#signout').addEventListener('click', signOut);
	$('#microsoft-form').addEventListener('submit', (ev) => {
		const d = domainValue();
		if (!d) {
			ev.preventDefault();
			say($('#signin-message'), t('signin.needs_domain'));
			$('#domain').focus();
			return;
		}
		rememberDomain(d);
		$('#microsoft-domain').value = d;
	});
	let debounce;
	$('#domain').addEventListener('input', () => {
		clearTimeout(debounce);
		debounce = setTimeout(() => lookUpTenant(domainValue()), 400);
	});
	$('#domain').addEventListener('change', () => {
		clearTimeout(debounce);
		const d = domainValue();
		$('#forgot-link').href = d ? `forgot.html?domain=${encodeURIComponent(d)}` : 'forgot.html';
		lookUpTenant(d);
	});
	const lookup = lookUpTenant(domain);

	if (frag.get('two_factor_enabled') === 'true' && frag.get('token')) {
		await lookup;
		startCode(frag.get('token'));
		return;
	}
	if (frag.get('error')) {
		await lookup;
		show('signin');
		landingError(frag).focus();
		return;
	}
	if (await showAccount())
		return;
	await lookup;
	showSignIn();
}

main();
