// Shared by the sign-in pages: the texts (i18n), calls to the pbx-auth API
// (cookie flavour, same origin) and the words for its error answers.
// Nothing here stores a token: the session is an HttpOnly cookie the
// browser keeps; a two-factor token lives in a variable of the page.

import en from '../i18n/en.js';

let texts = en;

// The texts of the browser's language when a file for it exists beside
// en.js (i18n/<lang>.js), else English; missing keys fall back to English.
export async function loadTexts() {
	const lang = (navigator.language || 'en').toLowerCase().split('-')[0];
	if (/^[a-z]{2,3}$/.test(lang) && lang !== 'en') {
		try {
			const mod = await import(`../i18n/${lang}.js`);
			texts = { ...en, ...mod.default };
		} catch {
			texts = en;
		}
	}
	document.documentElement.lang = texts.lang || 'en';
	applyTexts(document);
}

// The text of key, or undefined when no file has it.
export function text(key) {
	return texts[key] ?? en[key];
}

// t('code.wrong', {tries: 3}): the text of key with {name} filled in.
export function t(key, vars = {}) {
	const s = texts[key] ?? en[key] ?? key;
	return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

// Elements with data-i18n="key" get the text; data-i18n-title="key" sets
// the document title.
export function applyTexts(root) {
	for (const el of root.querySelectorAll('[data-i18n]'))
		el.textContent = t(el.dataset.i18n);
	const title = root.querySelector('[data-i18n-title]');
	if (title)
		document.title = t(title.dataset.i18nTitle);
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Shows a message in a live region: kind 'error' (role=alert) or 'info'.
export function say(el, text, kind = 'error') {
	el.textContent = text;
	el.className = `message ${kind}`;
	el.hidden = !text;
}

// One API request. Returns {status, json, retryAfter} (status 0: no answer).
export async function api(method, path, body) {
	const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
	if (body !== undefined) {
		init.headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(body);
	}
	let res;
	try {
		res = await fetch(path, init);
	} catch {
		return { status: 0, json: null, retryAfter: 0 };
	}
	let json = null;
	try {
		const text = await res.text();
		json = text ? JSON.parse(text) : null;
	} catch {
		json = null;
	}
	const ra = parseInt(res.headers.get('Retry-After') || '0', 10);
	return { status: res.status, json, retryAfter: Number.isFinite(ra) ? ra : 0 };
}

// The first error of an answer: {code, message, detail}.
export function firstError(r) {
	const e = r.json && Array.isArray(r.json.errors) ? r.json.errors[0] : null;
	return e || { code: '', message: '', detail: null };
}

// Words for an answer the calling page did not handle itself.
export function errorText(r) {
	const e = firstError(r);
	switch (r.status) {
	case 0:
		return t('error.network');
	case 400: {
		const d = e.detail && typeof e.detail === 'object' ? e.detail : null;
		return t('error.invalid', { detail: d ? `${d.field}: ${d.rule}` : e.message });
	}
	case 401:
		return t('signin.wrong');
	case 403:
		return t('error.forbidden');
	case 404:
		return t('error.not_found');
	case 429:
		return t('error.busy');
	case 502:
	case 503:
	case 504:
		return t('error.unavailable');
	default:
		return t('error.server');
	}
}

// Disables a form's controls while a request runs (and marks it busy).
export async function busy(form, fn) {
	const controls = [...form.elements].filter((c) => !c.disabled);
	form.setAttribute('aria-busy', 'true');
	controls.forEach((c) => { c.disabled = true; });
	try {
		return await fn();
	} finally {
		controls.forEach((c) => { c.disabled = false; });
		form.removeAttribute('aria-busy');
	}
}

// The parameters of a query string or fragment ("a=1&b=2", leading ?/# ok).
export function params(s) {
	return new URLSearchParams(s.replace(/^[?#]/, ''));
}

// Remembered between visits: the tenant domain only (never a token).
const DOMAIN_KEY = 'pbx-auth.domain';
export function rememberedDomain() {
	try {
		return localStorage.getItem(DOMAIN_KEY) || '';
	} catch {
		return '';
	}
}
export function rememberDomain(d) {
	try {
		if (d)
			localStorage.setItem(DOMAIN_KEY, d);
		else
			localStorage.removeItem(DOMAIN_KEY);
	} catch {
		// storage refused (private mode): nothing to remember then
	}
}
