/**
 * Process-wide environment defaults. Imported first by the entry points, so it runs before
 * the AWS SDK loads (the SDK prints a Node-version notice at load time unless this is set).
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
