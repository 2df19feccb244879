using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SafeKit.Api;

/// <summary>The certificate the API serves: the configured PKCS#12 file, or a self-signed one made once and kept.</summary>
public static class ApiCertificate
{
    /// <summary>
    /// Loads <paramref name="configured"/> (PKCS#12 without password), or the self-signed
    /// certificate kept at <paramref name="generated"/>, creating it on first use for
    /// <paramref name="node"/> and its <paramref name="addresses"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The file cannot be read as a certificate with its key.</exception>
    public static X509Certificate2 LoadOrCreate(string? configured, string generated, string node, IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(addresses);
        var path = configured ?? generated;
        if (configured is null && !File.Exists(generated))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(generated)!);
            using var created = CreateSelfSigned(node, addresses);
            using var stream = new FileStream(generated, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite });
            stream.Write(created.Export(X509ContentType.Pkcs12));
        }

        try
        {
            var certificate = X509CertificateLoader.LoadPkcs12FromFile(path, null);
            return certificate.HasPrivateKey ? certificate : throw new InvalidOperationException($"{path}: the certificate has no private key");
        }
        catch (CryptographicException e)
        {
            throw new InvalidOperationException($"{path}: not a PKCS#12 certificate with its key ({e.Message})", e);
        }
    }

    /// <summary>Writes the certificate (no key) as PEM, for operators and clients to trust it.</summary>
    public static void ExportPublic(X509Certificate2 certificate, string path)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        File.WriteAllText(path, certificate.ExportCertificatePem() + "\n");
    }

    /// <summary>Reads a PEM (or DER) certificate: the authority that signed the nodes' certificates.</summary>
    /// <exception cref="InvalidOperationException">The file is not a certificate.</exception>
    public static X509Certificate2 LoadAuthority(string path)
    {
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (CryptographicException e)
        {
            throw new InvalidOperationException($"{path}: not a certificate ({e.Message})", e);
        }
    }

    /// <summary>A self-signed certificate for <paramref name="node"/>, loopback and <paramref name="addresses"/> (kept in memory only).</summary>
    public static X509Certificate2 CreateSelfSigned(string node, IReadOnlyList<IPAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={node}, O=SafeKit Appliance", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(node);
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        foreach (var address in addresses)
        {
            names.AddIpAddress(address);
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-1), now.AddYears(10));
    }
}
